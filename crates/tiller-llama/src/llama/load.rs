//! Loading: llama.cpp's backend and log, set up once per process, and models loaded once per
//! file and shared, each call getting a context of its own.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use super::{DEFAULT_CONTEXT, LlamaConfig, batch};
use crate::LlamaError;
use crate::gguf::GgufInfo;

/// llama.cpp's backend, set up once per process, with its log kept off the terminal unless
/// `TILLER_LLAMA_LOG` is set, but its errors kept to say why a load failed.
pub(super) fn backend() -> Result<&'static LlamaBackend, LlamaError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            ECHO_LOG.store(std::env::var_os("TILLER_LLAMA_LOG").is_some(), Ordering::Relaxed);
            #[allow(unsafe_code)]
            // SAFETY: `log` has the signature llama.cpp expects and ignores the user data.
            unsafe {
                llama_cpp_sys_2::llama_log_set(Some(log), std::ptr::null_mut());
            }
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| LlamaError::Engine(e.clone()))
}

/// Whether llama.cpp's log goes to stderr.
static ECHO_LOG: AtomicBool = AtomicBool::new(false);
/// The last error lines llama.cpp logged, newest last.
static LOGGED_ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// llama.cpp's log callback: echoes when asked to, and keeps the errors. It must not panic.
#[allow(unsafe_code)]
unsafe extern "C" fn log(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const std::ffi::c_char,
    _: *mut std::ffi::c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the call.
    let text = unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy();
    if ECHO_LOG.load(Ordering::Relaxed) {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    }
    if level == llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR {
        let mut errors = LOGGED_ERRORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if errors.len() >= 16 {
            errors.remove(0);
        }
        errors.push(text.trim().to_string());
    }
}

/// The error lines llama.cpp logged since the last call, which it takes.
fn take_logged_errors() -> Vec<String> {
    std::mem::take(&mut *LOGGED_ERRORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Why llama.cpp failed, from the errors it logged; `fallback` when it logged none.
fn logged_reason(fallback: String) -> String {
    let errors = take_logged_errors();
    // "llama_model_load: error loading model: missing tensor 'blk.2.attn_norm.weight'"
    let cause = errors.iter().find_map(|line| line.split_once("error loading model: "));
    match cause {
        Some((_, why)) => why.to_string(),
        None if !errors.is_empty() => errors.join("; "),
        None => fallback,
    }
}

/// Models loaded so far, by file and its modification time and length.
type Loaded = Vec<((PathBuf, Option<SystemTime>, u64), &'static LlamaModel)>;

/// Loads `path` (or reuses it when loaded before) and makes a context for it. One lock covers
/// both: llama.cpp must not make two contexts of one model at the same time.
pub(super) fn load_shared(
    backend: &'static LlamaBackend,
    path: &Path,
    config: &LlamaConfig,
    info: &GgufInfo,
) -> Result<(&'static LlamaModel, LlamaContext<'static>), LlamaError> {
    static MODELS: Mutex<Loaded> = Mutex::new(Vec::new());
    let meta = std::fs::metadata(path)
        .map_err(|source| LlamaError::Io { path: path.to_path_buf(), source })?;
    let key = (
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        meta.modified().ok(),
        meta.len(),
    );
    let mut models = MODELS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let model = match models.iter().find(|(k, _)| *k == key) {
        Some((_, model)) => *model,
        None => {
            let params = LlamaModelParams::default();
            take_logged_errors();
            let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
                LlamaError::Load { path: path.to_path_buf(), detail: logged_reason(e.to_string()) }
            })?;
            let model: &'static LlamaModel = Box::leak(Box::new(model));
            models.push((key, model));
            model
        }
    };

    let trained = info
        .context_length
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| model.n_ctx_train());
    let n_ctx = trained.min(config.context_length.unwrap_or(DEFAULT_CONTEXT)).max(16);
    let threads = config.threads.map_or_else(physical_cores, |t| t.max(1) as i32);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx.min(512))
        // Replies decoded together are sequences of one cache, each of the whole length; one
        // more holds a prompt set aside.
        .with_n_seq_max(batch::MAX_SEQUENCES as u32 + 1)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = model.new_context(backend, params).map_err(|e| LlamaError::Load {
        path: path.to_path_buf(),
        detail: format!("cannot make a context of {n_ctx} tokens: {e}"),
    })?;
    Ok((model, ctx))
}

/// Physical cores (hyperthreads slow token generation down), or logical ones where the count of
/// physical ones is unknown.
pub(crate) fn physical_cores() -> i32 {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get() as i32);
    let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
        return logical;
    };
    let mut cores = std::collections::HashSet::new();
    let mut package = "";
    for line in cpuinfo.lines() {
        let mut kv = line.splitn(2, ':').map(str::trim);
        match (kv.next(), kv.next()) {
            (Some("physical id"), Some(v)) => package = v,
            (Some("core id"), Some(v)) => {
                cores.insert((package, v));
            }
            _ => {}
        }
    }
    match cores.len() as i32 {
        0 => logical,
        n => n.min(logical),
    }
}

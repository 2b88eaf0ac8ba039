//! The models folder: where installed models live, how a name finds its file, and what is there.
//!
//! A model named `NAME` is the file `NAME.gguf` in the folder, which is
//! `${XDG_DATA_HOME:-$HOME/.local/share}/tiller/models/` unless configured otherwise;
//! `scripts/fetch-model NAME` installs models there under those names (`smollm2`,
//! `gemma3-270m`). Anything with a path separator or a `.gguf` ending is taken as a path.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::template::ChatFormat;
use crate::{DEFAULT_CONTEXT, LlamaError, gguf};

/// One installed model, as `tiller models` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    /// The name `--model` takes: the file name without `.gguf`.
    pub name: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub architecture: Option<String>,
    /// The context length the model was trained for.
    pub context_length: Option<u64>,
    pub quantisation: Option<String>,
    pub has_chat_template: bool,
    /// Weights in all its tensors.
    pub parameters: Option<u64>,
    /// Whether its chat template takes tools (so that it is given them in its own format).
    pub template_tools: bool,
    /// The tool-call format tiller uses with it (`tiller` where the template knows no tools).
    pub tool_format: Option<String>,
    /// The context it would run with: the configured one, within what it was trained for.
    pub context: Option<u64>,
    /// The memory it needs at that context: its weights plus the KV cache.
    pub memory_bytes: Option<u64>,
    /// Whether this crate can run it; see `problem` when not.
    pub supported: bool,
    /// Why the model cannot be loaded, when it cannot.
    pub problem: Option<String>,
    #[serde(skip)]
    kv_bytes_per_token: Option<u64>,
}

impl ModelSummary {
    /// Sets [`Self::context`] and [`Self::memory_bytes`] for a configured context length.
    pub fn at_context(&mut self, configured: u64) {
        // A file that cannot run has no context in use.
        if self.problem.is_some() {
            return;
        }
        let context = self.context_length.map_or(configured, |trained| trained.min(configured));
        self.context = Some(context);
        self.memory_bytes = self
            .kv_bytes_per_token
            .map(|kv| self.size_bytes.saturating_add(kv.saturating_mul(context)));
    }
}

/// `${XDG_DATA_HOME:-$HOME/.local/share}/tiller/models`, or `None` with neither variable set.
pub fn default_models_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
            Some(PathBuf::from(home).join(".local/share"))
        })?;
    Some(data.join("tiller/models"))
}

/// The file `model` names: a path as is, `ollama:NAME` in Ollama's store, or `NAME` as
/// `NAME.gguf` in `dir` (the default folder when `None`).
pub fn resolve_model(model: &str, dir: Option<&Path>) -> Result<PathBuf, LlamaError> {
    if let Some(name) = model.strip_prefix(crate::ollama::PREFIX) {
        return crate::ollama::resolve(name);
    }
    if model.contains(std::path::MAIN_SEPARATOR) || model.contains('/') || model.ends_with(".gguf")
    {
        return Ok(PathBuf::from(model));
    }
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => default_models_dir().ok_or(LlamaError::NoModelsDir)?,
    };
    let path = dir.join(format!("{model}.gguf"));
    if path.is_file() {
        return Ok(path);
    }
    let installed: Vec<String> = list_models(&dir).into_iter().map(|m| m.name).collect();
    Err(LlamaError::ModelNotFound {
        name: model.to_string(),
        dir,
        installed: if installed.is_empty() {
            "none; run scripts/fetch-model".into()
        } else {
            installed.join(", ")
        },
    })
}

/// The `.gguf` files in `dir`, by name, with what their headers say. A missing folder is empty.
pub fn list_models(dir: &Path) -> Vec<ModelSummary> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf") && p.is_file())
        .collect();
    paths.sort();
    paths.into_iter().map(|p| summarise(&p)).collect()
}

pub(crate) fn summarise(path: &Path) -> ModelSummary {
    let name = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let size_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut summary = ModelSummary {
        name,
        path: path.to_path_buf(),
        size_bytes,
        architecture: None,
        context_length: None,
        quantisation: None,
        has_chat_template: false,
        parameters: None,
        template_tools: false,
        tool_format: None,
        context: None,
        memory_bytes: None,
        supported: false,
        problem: None,
        kv_bytes_per_token: None,
    };
    match gguf::read(path) {
        Ok(info) => {
            // The template's own BOS and EOS text is not known without the vocabulary.
            let format = ChatFormat::new(info.chat_template.clone(), String::new(), String::new());
            summary.problem = match (&info.check_supported(path), &format) {
                (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
                _ => None,
            };
            summary.supported = summary.problem.is_none();
            if let Ok(format) = format {
                summary.tool_format = Some(format.tool_format().name().into());
                summary.template_tools = format.tool_format().template_takes_tools();
            }
            summary.quantisation = Some(info.quantisation());
            summary.context_length = info.context_length;
            summary.has_chat_template = info.chat_template.is_some();
            summary.parameters = Some(info.parameters);
            summary.kv_bytes_per_token = info.kv_bytes_per_token;
            summary.architecture = Some(info.architecture);
            summary.at_context(u64::from(DEFAULT_CONTEXT));
        }
        Err(e) => summary.problem = Some(e.to_string()),
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_the_folder_and_paths_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tiny.gguf"), b"GGUF").unwrap();
        assert_eq!(resolve_model("tiny", Some(dir.path())).unwrap(), dir.path().join("tiny.gguf"));
        assert_eq!(resolve_model("x/y.bin", None).unwrap(), PathBuf::from("x/y.bin"));
        assert_eq!(resolve_model("m.gguf", None).unwrap(), PathBuf::from("m.gguf"));
        let err = resolve_model("other", Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("installed: tiny"), "{err}");
    }

    #[test]
    fn listing_reports_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.gguf"), b"not a model").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        let list = list_models(dir.path());
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "bad");
        assert!(!list[0].supported);
        assert!(list[0].problem.as_deref().unwrap().contains("not a GGUF"));
        assert!(list_models(&dir.path().join("missing")).is_empty());
    }
}

//! The embedded llama.cpp engine, when this build has it (cargo feature `llama`, on by default;
//! without it, the same functions explain what is missing).

use tiller_model::Provider;
use tiller_types::Profile;

use crate::command_error::{CommandError, Kind};

/// The model used when none is named: the one `scripts/fetch-model` installs by default.
#[cfg(feature = "llama")]
pub const DEFAULT_MODEL: &str = "smollm2";

#[cfg(feature = "llama")]
pub fn load(profile: &Profile) -> Result<Box<dyn Provider>, CommandError> {
    let mut config =
        tiller_llama::LlamaConfig::new(profile.model.as_deref().unwrap_or(DEFAULT_MODEL));
    config.models_dir = Some(crate::paths::models_dir());
    config.context_length = profile.context_length.map(|c| c.min(u64::from(u32::MAX)) as u32);
    config.seed = profile.seed.unwrap_or_default();
    match tiller_llama::Llama::load(&config) {
        Ok(llama) => Ok(Box::new(llama)),
        Err(e @ tiller_llama::LlamaError::ModelNotFound { .. }) => {
            Err(CommandError::new(Kind::Config, e.to_string()).with_hint(format!(
                "install the default model with scripts/fetch-model, or pass --model PATH.gguf (models go in {})",
                crate::paths::models_dir().display()
            )))
        }
        Err(e @ tiller_llama::LlamaError::OllamaModel { .. }) => {
            Err(CommandError::new(Kind::Config, e.to_string())
                .with_hint("`tiller models` lists them; OLLAMA_MODELS names another store"))
        }
        Err(e) => Err(CommandError::new(Kind::Model, e.to_string())),
    }
}

#[cfg(not(feature = "llama"))]
pub fn load(_: &Profile) -> Result<Box<dyn Provider>, CommandError> {
    Err(missing())
}

/// The names of the installed models.
#[cfg(feature = "llama")]
pub fn names() -> Vec<String> {
    tiller_llama::list_models(&crate::paths::models_dir()).into_iter().map(|m| m.name).collect()
}

#[cfg(not(feature = "llama"))]
pub fn names() -> Vec<String> {
    Vec::new()
}

/// `tiller models`: the installed models, then Ollama's, with what each needs at the configured context.
#[cfg(feature = "llama")]
pub fn list(args: &crate::cli::ModelArgs, json: bool) -> Result<(), CommandError> {
    let configured = crate::config::settle(args)?
        .profile
        .context_length
        .unwrap_or(u64::from(tiller_llama::DEFAULT_CONTEXT));
    let ollama = tiller_llama::ollama::list();
    for mut m in tiller_llama::list_models(&crate::paths::models_dir()).into_iter().chain(ollama) {
        m.at_context(configured);
        if json {
            outln!(
                "{}",
                serde_json::to_string(&m)
                    .map_err(|e| CommandError::new(Kind::Internal, e.to_string()))?
            );
            continue;
        }
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let status = match (&m.problem, m.has_chat_template, m.template_tools) {
            (Some(problem), ..) => format!("unusable: {problem}"),
            (None, true, true) => "template takes tools".into(),
            (None, true, false) if m.tool_format.as_deref() != Some("tiller") => {
                "template writes calls; tiller describes the tools".into()
            }
            (None, true, false) => "template knows no tools".into(),
            (None, false, _) => "no chat template (plain transcript)".into(),
        };
        let gib = |bytes: u64| format!("{:.1} GiB", bytes as f64 / f64::from(1 << 30));
        outln!(
            "{:<16} {:<10} {:>6} {:<8} ctx {:<13} calls {:<11} needs {:<9} {status}",
            m.name,
            or_dash(m.architecture),
            or_dash(m.parameters.map(count)),
            or_dash(m.quantisation),
            or_dash(m.context.map(|c| match m.context_length {
                Some(trained) => format!("{c}/{trained}"),
                None => c.to_string(),
            })),
            or_dash(m.tool_format),
            or_dash(m.memory_bytes.map(gib)),
        );
    }
    Ok(())
}

/// A count the way model sizes are said: `135M`, `7.6B`.
#[cfg(feature = "llama")]
fn count(n: u64) -> String {
    match n {
        0..1_000_000 => format!("{:.0}K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0}M", n as f64 / 1e6),
        _ => format!("{:.1}B", n as f64 / 1e9),
    }
}

#[cfg(not(feature = "llama"))]
pub fn list(_: &crate::cli::ModelArgs, _: bool) -> Result<(), CommandError> {
    Err(missing())
}

#[cfg(not(feature = "llama"))]
pub fn missing() -> CommandError {
    CommandError::new(Kind::Config, "this build of tiller has no embedded llama.cpp engine")
        .with_hint("rebuild with the default `llama` feature, or use --provider openai with a llama.cpp server")
}

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

/// `tiller models`: the installed models, then Ollama's.
#[cfg(feature = "llama")]
pub fn list(json: bool) -> Result<(), CommandError> {
    let ollama = tiller_llama::ollama::list();
    for m in tiller_llama::list_models(&crate::paths::models_dir()).into_iter().chain(ollama) {
        if json {
            outln!(
                "{}",
                serde_json::to_string(&m)
                    .map_err(|e| CommandError::new(Kind::Internal, e.to_string()))?
            );
            continue;
        }
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let status = match (&m.problem, m.has_chat_template) {
            (Some(problem), _) => format!("unusable: {problem}"),
            (None, true) => "chat template".into(),
            (None, false) => "no chat template (plain transcript)".into(),
        };
        outln!(
            "{:<16} {:>7.1} MiB  {:<10} ctx {:<7} {:<8} {status}",
            m.name,
            m.size_bytes as f64 / (1024.0 * 1024.0),
            or_dash(m.architecture),
            or_dash(m.context_length.map(|c| c.to_string())),
            or_dash(m.quantisation),
        );
    }
    Ok(())
}

#[cfg(not(feature = "llama"))]
pub fn list(_: bool) -> Result<(), CommandError> {
    Err(missing())
}

#[cfg(not(feature = "llama"))]
pub fn missing() -> CommandError {
    CommandError::new(Kind::Config, "this build of tiller has no embedded llama.cpp engine")
        .with_hint("rebuild with the default `llama` feature, or use --provider openai with a llama.cpp server")
}

//! Errors of the embedded engine, each naming the file or limit at fault.

use std::path::PathBuf;

use tiller_model::ModelError;

/// Why a model could not be found, read, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a GGUF model (no GGUF magic)")]
    NotGguf { path: PathBuf },
    #[error("{path} is truncated: {detail}")]
    Truncated { path: PathBuf, detail: String },
    #[error("{path} is malformed: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("{path} uses GGUF version {version}; versions 2 and 3 are supported")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "{path} is a '{arch}' model, which llama.cpp loads but which cannot write a reply \
         (an encoder, embedding, diffusion or draft model)"
    )]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error("no model named '{name}' in {dir} (installed: {installed})")]
    ModelNotFound { name: String, dir: PathBuf, installed: String },
    #[error("no models folder: set XDG_DATA_HOME or HOME, or give the model as a path")]
    NoModelsDir,
    #[error("llama.cpp could not load {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("the prompt is {prompt} tokens but the context holds {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("chat template: {0}")]
    Template(String),
    #[error("tool grammar: {0}")]
    Grammar(String),
    #[error("llama.cpp: {0}")]
    Engine(String),
    #[error("no Ollama model '{name}' in {store}: {reason}")]
    OllamaModel { name: String, store: PathBuf, reason: String },
    /// What to pull is unclear or not there.
    #[error("{0}")]
    Pull(String),
    #[error(transparent)]
    Fetch(#[from] ModelError),
}

impl From<LlamaError> for ModelError {
    fn from(e: LlamaError) -> Self {
        match e {
            LlamaError::ModelNotFound { .. }
            | LlamaError::NoModelsDir
            | LlamaError::OllamaModel { .. } => ModelError::Config(e.to_string()),
            e => ModelError::Engine(e.to_string()),
        }
    }
}

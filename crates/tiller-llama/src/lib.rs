//! The embedded llama.cpp engine: GGUF models run in-process as one more
//! [`Provider`](tiller_model::Provider).
//!
//! [`Llama::load`] finds a model by name or path ([`resolve_model`]), checks its header with a
//! pure-Rust reader ([`gguf`]) before llama.cpp sees it, renders prompts with the model's own chat
//! template ([`template`]), constrains tool calls with a grammar for the model family's own call
//! format built from the offered tools ([`tool_format`], [`grammar`]), and keeps the KV cache between calls. [`list_models`] lists the installed ones.

pub mod bench;
mod error;
pub mod gguf;
pub mod grammar;
mod jinja;
mod llama;
mod models;
pub mod ollama;
pub mod pull;
mod stream;
pub mod template;
pub mod tool_format;

pub use error::LlamaError;
pub use llama::{DEFAULT_CONTEXT, DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, Llama, LlamaConfig};
pub use models::{ModelSummary, default_models_dir, list_models, resolve_model};

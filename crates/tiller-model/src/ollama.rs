//! Ollama behind its OpenAI-compatible endpoint. Ollama runs each model with a context of its
//! own (`num_ctx`: 4,096 tokens by default, 2,048 in older versions, unless the model's
//! parameters or the server's `OLLAMA_CONTEXT_LENGTH` say otherwise), silently drops the start
//! of a longer prompt, and takes no context setting through `/v1`. So tiller reads the context
//! the model runs with and budgets to it.
//!
//! Ollama is recognised before the first call by its port (11434) and otherwise by the
//! `system_fingerprint` its answers carry, after which the next calls are budgeted. A model not
//! loaded yet is asked about again after the next call, which loads it with its real context
//! (`OLLAMA_CONTEXT_LENGTH` on the server shows only then).

use serde_json::{Value, json};

use crate::http::Client;

/// Ollama's port.
pub(crate) const PORT: u16 = 11434;
/// The `system_fingerprint` of Ollama's chat completions.
pub(crate) const FINGERPRINT: &str = "fp_ollama";
/// The context Ollama gives a model that names none.
const DEFAULT_CONTEXT: u64 = 4096;

/// The context Ollama runs `model` with, and whether it is loaded: as loaded (`/api/ps`), else
/// its `num_ctx` parameter (`/api/show`), else Ollama's default. `None` when the server does not
/// answer as Ollama does.
pub(crate) fn context(client: &Client, model: &str) -> Option<(u64, bool)> {
    let root = client.config.base_url.trim_end_matches('/').trim_end_matches("/v1");
    client.json(&format!("{root}/api/version"), None, &[]).ok()?.get("version")?;
    let same = |name: &Value| {
        let name = name.as_str().unwrap_or_default();
        name == model || name.strip_suffix(":latest") == Some(model)
    };
    let loaded = client.json(&format!("{root}/api/ps"), None, &[]).ok().and_then(|ps| {
        let models = ps["models"].as_array()?.clone();
        let found = models.into_iter().find(|m| same(&m["name"]) || same(&m["model"]))?;
        found["context_length"].as_u64()
    });
    if let Some(context) = loaded {
        return Some((context, true));
    }
    let show = client.json(&format!("{root}/api/show"), Some(&json!({"model": model})), &[]);
    let parameters = show.ok().and_then(|s| s["parameters"].as_str().map(str::to_string));
    let num_ctx = parameters.as_deref().unwrap_or_default().lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("num_ctx")).then(|| words.next()?.parse().ok())?
    });
    Some((num_ctx.unwrap_or(DEFAULT_CONTEXT), false))
}

//! Models already pulled with Ollama, run in-process without Ollama: `ollama:NAME[:TAG]` is
//! looked up in Ollama's store (`$OLLAMA_MODELS`, else `~/.ollama/models`), whose manifest
//! (`manifests/HOST/NAMESPACE/NAME/TAG`, JSON) names the model's GGUF blob by digest
//! (`blobs/sha256-HEX`). The blob is read where it is: nothing is copied or written.

use std::path::{Path, PathBuf};

use crate::LlamaError;
use crate::models::{ModelSummary, summarise};

/// The prefix that names an Ollama model.
pub const PREFIX: &str = "ollama:";
const REGISTRY: &str = "registry.ollama.ai";
/// The layer of a manifest that holds the weights.
const MODEL_LAYER: &str = "application/vnd.ollama.image.model";

/// Ollama's store: `$OLLAMA_MODELS`, else `~/.ollama/models`.
pub fn store() -> Option<PathBuf> {
    let set = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("OLLAMA_MODELS").or_else(|| Some(set("HOME")?.join(".ollama/models")))
}

/// The GGUF blob of `name` (`qwen2.5-coder:7b`, `user/model`, `hf.co/org/repo:Q4_K_M`).
pub fn resolve(name: &str) -> Result<PathBuf, LlamaError> {
    resolve_in(&store().ok_or(LlamaError::NoModelsDir)?, name)
}

fn resolve_in(store: &Path, name: &str) -> Result<PathBuf, LlamaError> {
    let missing = |reason: String| LlamaError::OllamaModel {
        name: name.to_string(),
        store: store.to_path_buf(),
        reason,
    };
    let (path, tag) =
        name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((name, "latest"));
    // NAME is library/NAME on Ollama's registry, NAMESPACE/NAME too; three parts name the host.
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() == 1 {
        parts.insert(0, "library");
    }
    if parts.len() == 2 {
        parts.insert(0, REGISTRY);
    }
    let manifest = parts.iter().fold(store.join("manifests"), |p, part| p.join(part)).join(tag);
    if parts.iter().chain([&tag]).any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(missing("not a model name".into()));
    }
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        let installed = list().into_iter().map(|m| m.name).collect::<Vec<_>>();
        let installed = if installed.is_empty() { "none".into() } else { installed.join(", ") };
        missing(format!("{}: {e}; installed: {installed}", manifest.display()))
    })?;
    blob(store, &text).map_err(missing)
}

/// The model blob a manifest names.
fn blob(store: &Path, manifest: &str) -> Result<PathBuf, String> {
    let json: serde_json::Value =
        serde_json::from_str(manifest).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let layers = json["layers"].as_array().map_or(&[][..], Vec::as_slice);
    let layer = layers
        .iter()
        .find(|l| l["mediaType"] == MODEL_LAYER)
        .ok_or("the manifest has no model layer")?;
    let digest = layer["digest"].as_str().unwrap_or_default();
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the model layer's digest `{digest}` is not a sha256"));
    }
    let path = store.join("blobs").join(format!("sha256-{hex}"));
    if !path.is_file() {
        return Err(format!("its blob {} is missing", path.display()));
    }
    Ok(path)
}

/// The models in Ollama's store, as `ollama:NAME:TAG` (the `registry.ollama.ai/library/` part
/// left out, as Ollama does).
pub fn list() -> Vec<ModelSummary> {
    let Some(store) = store() else {
        return Vec::new();
    };
    let root = store.join("manifests");
    let mut manifests = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                manifests.push(path);
            }
        }
    }
    manifests.sort();
    let mut models = Vec::new();
    for manifest in manifests {
        let Ok(relative) = manifest.strip_prefix(&root) else { continue };
        let parts: Vec<String> =
            relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let Some((tag, path)) = parts.split_last() else { continue };
        let path = path.join("/");
        let short = path
            .strip_prefix(&format!("{REGISTRY}/library/"))
            .or(path.strip_prefix(&format!("{REGISTRY}/")));
        let name = format!("{PREFIX}{}:{tag}", short.unwrap_or(&path));
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        let mut summary = match blob(&store, &text) {
            Ok(blob) => summarise(&blob),
            Err(problem) => {
                let mut s = summarise(&manifest);
                s.problem = Some(problem);
                s
            }
        };
        summary.name = name;
        models.push(summary);
    }
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_manifests_as_ollama_stores_them() {
        let store = tempfile::tempdir().unwrap();
        let hex = "ab".repeat(32);
        std::fs::create_dir_all(store.path().join("blobs")).unwrap();
        std::fs::write(store.path().join(format!("blobs/sha256-{hex}")), b"GGUF").unwrap();
        let manifest = serde_json::json!({"layers": [{"mediaType": MODEL_LAYER, "digest": format!("sha256:{hex}")}]});
        for (name, file) in [
            ("m", "registry.ollama.ai/library/m/latest"),
            ("m:7b", "registry.ollama.ai/library/m/7b"),
            ("user/m:q4", "registry.ollama.ai/user/m/q4"),
            ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo/Q4_K_M"),
        ] {
            let path = store.path().join("manifests").join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, manifest.to_string()).unwrap();
            let blob = resolve_in(store.path(), name).unwrap();
            assert_eq!(blob, store.path().join(format!("blobs/sha256-{hex}")), "{name}");
            std::fs::remove_file(path).unwrap();
        }
        let err = resolve_in(store.path(), "../../etc/passwd").unwrap_err().to_string();
        assert!(err.contains("not a model name"), "{err}");
    }
}

//! Where tiller keeps things: XDG config and data directories.

use std::path::PathBuf;

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => home().join(fallback),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

/// `$XDG_CONFIG_HOME/tiller/config.toml`.
pub fn config_file() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("tiller/config.toml")
}

/// `$XDG_DATA_HOME/tiller`: sessions, models, the ledger.
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("tiller")
}

/// The ledger of every model call and action, shared by all tiller processes.
pub fn ledger_file() -> PathBuf {
    data_dir().join("ledger.sqlite")
}

pub fn sessions_dir() -> PathBuf {
    data_dir().join("sessions")
}

/// Installed GGUF models: `NAME.gguf` answers to `--model NAME`.
#[cfg(feature = "llama")]
pub fn models_dir() -> PathBuf {
    data_dir().join("models")
}

/// The tasks given in the front end in workspace `root`, for its history (Up, Ctrl-R): one file
/// per workspace, named by the folder and a hash of its path.
pub fn history_file(root: &std::path::Path) -> PathBuf {
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    let hash = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3));
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    data_dir().join("history").join(format!("{name}-{hash:016x}.jsonl"))
}

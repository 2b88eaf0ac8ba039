//! Errors of the ledger.

use std::path::PathBuf;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("cannot create the directory of ledger {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    /// The file was written by a newer tiller; opening it could misread or damage it.
    #[error(
        "ledger {path} has schema version {found}, newer than the {supported} this tiller \
         understands; upgrade tiller or point it at another ledger file"
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("ledger {path}: entry {id} has a malformed payload: {source}")]
    Payload { path: PathBuf, id: i64, source: serde_json::Error },
    #[error("cannot encode a ledger entry: {0}")]
    Encode(serde_json::Error),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

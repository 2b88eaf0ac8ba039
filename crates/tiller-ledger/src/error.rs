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

/// Why the machine keeps the ledger from being used: conditions of the user's environment, not
/// defects of tiller, each with its own remedy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Another process holds the write lock.
    Busy,
    /// The disk (or quota) is full.
    Full,
    /// The file or its directory cannot be written.
    ReadOnly,
    /// The file is not an SQLite database, or is damaged.
    Damaged,
}

impl LedgerError {
    /// The environmental cause of this error, when it has one.
    pub fn trouble(&self) -> Option<Trouble> {
        use rusqlite::ErrorCode;
        match self {
            LedgerError::Sqlite { source, .. } => match source.sqlite_error_code()? {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Trouble::Busy),
                // A full disk shows as an I/O error where SQLite maps its shared memory.
                ErrorCode::DiskFull | ErrorCode::SystemIoFailure => Some(Trouble::Full),
                ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                    Some(Trouble::ReadOnly)
                }
                ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => Some(Trouble::Damaged),
                _ => None,
            },
            LedgerError::CreateDir { source, .. } => match source.kind() {
                std::io::ErrorKind::StorageFull => Some(Trouble::Full),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
                    Some(Trouble::ReadOnly)
                }
                _ => None,
            },
            LedgerError::Payload { .. } => Some(Trouble::Damaged),
            _ => None,
        }
    }
}

//! The ledger file: opening and migrating it, appending entries to the chain, and verifying it.
//!
//! Several tiller processes may share one file. WAL mode lets readers run beside the one writer,
//! the busy timeout makes a writer wait for another's transaction rather than fail, and every
//! append runs in a `BEGIN IMMEDIATE` transaction, which takes the write lock before reading the
//! chain's last hash, so that two appends can never both build on the same row.
//!
//! `synchronous=NORMAL`: in WAL mode a commit is atomic and survives the process being killed at
//! any point; only a power loss or OS crash can drop the last few commits, each as a whole, and
//! the chain stays valid. `FULL` would add an fsync to every turn for that case alone, and the
//! request a lost entry describes has already left by the time its entry is written anyway.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::chain::{self, BreakReason, Broken, GENESIS, RowContent, Verification};
use crate::{Entry, LedgerError};

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema steps; step `i` takes the file from `user_version` `i` to `i + 1`, in one transaction.
/// Append steps; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the chain. Triggers refuse updates and deletes from ordinary SQL; `verify` catches
    // whoever drops them.
    "CREATE TABLE entries (
        id        INTEGER PRIMARY KEY,
        time_ms   INTEGER NOT NULL,
        session   TEXT NOT NULL,
        kind      TEXT NOT NULL,
        payload   TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE INDEX entries_kind_time ON entries (kind, time_ms);
    CREATE INDEX entries_session ON entries (session);
    CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
    CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;",
    // 2: model calls as columns, for people reading the file with `sqlite3`.
    "CREATE VIEW model_calls AS SELECT
        id, time_ms, session,
        json_extract(payload, '$.provider') AS provider,
        json_extract(payload, '$.endpoint') AS endpoint,
        json_extract(payload, '$.model_requested') AS model_requested,
        json_extract(payload, '$.model_returned') AS model_returned,
        json_extract(payload, '$.prompt_tokens') AS prompt_tokens,
        json_extract(payload, '$.cached_tokens') AS cached_tokens,
        json_extract(payload, '$.completion_tokens') AS completion_tokens,
        json_extract(payload, '$.ttft_ms') AS ttft_ms,
        json_extract(payload, '$.latency_ms') AS latency_ms,
        json_extract(payload, '$.cost') AS cost
    FROM entries WHERE kind = 'model_call';",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open ledger file.
pub struct Ledger {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Ledger {
    /// Opens the ledger at `path`, creating the file and its directory if needed and bringing its
    /// schema up to date. A file from a newer tiller is refused with
    /// [`LedgerError::NewerSchema`].
    pub fn open(path: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| LedgerError::CreateDir { path: path.clone(), source })?;
        }
        let conn = Connection::open(&path).at(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT).at(&path)?;
        enable_wal(&conn, &path)?;
        conn.pragma_update(None, "synchronous", "NORMAL").at(&path)?;
        let ledger = Ledger { conn, path };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// Opens the ledger at `path` for reading only: nothing is created, migrated or written, so
    /// that listings and `verify` work on a file or directory this process may not write. In a
    /// read-only directory where SQLite cannot create the WAL index, the file is read as
    /// immutable.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        let open = |uri: String| -> Result<Ledger, LedgerError> {
            let conn = Connection::open_with_flags(uri, flags).at(&path)?;
            let ledger = Ledger { conn, path: path.clone() };
            ledger.schema_version()?;
            Ok(ledger)
        };
        let uri = format!("file:{}?mode=ro", uri_path(&path));
        open(uri.clone()).or_else(|_| open(format!("{uri}&immutable=1")))
    }

    /// The file this ledger lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entries` to the chain in one transaction: all of them or, on error, none.
    pub fn append(&self, entries: &[Entry]) -> Result<(), LedgerError> {
        self.insert(entries, false).map(|_| ())
    }

    /// Appends those of `entries` the ledger does not hold yet (same session, time, kind and
    /// payload), in one transaction; returns how many were added. For rows kept aside while the
    /// ledger could not be written, which an earlier attempt may have written after all.
    pub fn append_missing(&self, entries: &[Entry]) -> Result<usize, LedgerError> {
        self.insert(entries, true)
    }

    fn insert(&self, entries: &[Entry], skip_present: bool) -> Result<usize, LedgerError> {
        if entries.is_empty() {
            return Ok(0);
        }
        // Encode before taking the write lock, to hold it as briefly as possible.
        let payloads = entries
            .iter()
            .map(|e| e.record.payload())
            .collect::<Result<Vec<_>, _>>()
            .map_err(LedgerError::Encode)?;
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).at(&self.path)?;
        let last = tx
            .prepare_cached("SELECT id, hash FROM entries ORDER BY id DESC LIMIT 1")
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .at(&self.path)?;
        let (mut id, mut prev): (i64, String) = last.unwrap_or((0, GENESIS.to_owned()));
        let mut added = 0;
        {
            let mut present = tx
                .prepare_cached(
                    "SELECT 1 FROM entries
                     WHERE session = ?1 AND time_ms = ?2 AND kind = ?3 AND payload = ?4",
                )
                .at(&self.path)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO entries (id, time_ms, session, kind, payload, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .at(&self.path)?;
            for (entry, payload) in entries.iter().zip(&payloads) {
                let kind = entry.record.kind();
                if skip_present
                    && present
                        .exists(params![entry.session, entry.time_ms, kind, payload])
                        .at(&self.path)?
                {
                    continue;
                }
                id += 1;
                let content = RowContent {
                    id,
                    time_ms: entry.time_ms,
                    session: &entry.session,
                    kind,
                    payload,
                };
                let hash = chain::row_hash(&prev, &content);
                insert
                    .execute(params![id, entry.time_ms, entry.session, kind, payload, prev, hash])
                    .at(&self.path)?;
                prev = hash;
                added += 1;
            }
        }
        tx.commit().at(&self.path)?;
        Ok(added)
    }

    /// Walks the whole chain in id order and reports the first row that breaks it.
    pub fn verify(&self) -> Result<Verification, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, time_ms, session, kind, payload, prev_hash, hash FROM entries ORDER BY id")
            .at(&self.path)?;
        let mut rows = stmt.query([]).at(&self.path)?;
        let mut expected_prev = GENESIS.to_owned();
        let mut checked = 0;
        while let Some(row) = rows.next().at(&self.path)? {
            let id: i64 = row.get(0).at(&self.path)?;
            let broken = |reason| Ok(Verification { checked, broken: Some(Broken { id, reason }) });
            // A hand-edited row may hold values of the wrong type; that row is broken, not the file.
            let read = (|| -> rusqlite::Result<_> {
                let fields: (i64, String, String, String, String, String) =
                    (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?);
                Ok(fields)
            })();
            let Ok((time_ms, session, kind, payload, prev_hash, hash)) = read else {
                return broken(BreakReason::HashMismatch);
            };
            if prev_hash != expected_prev {
                return broken(BreakReason::PrevMismatch);
            }
            let content =
                RowContent { id, time_ms, session: &session, kind: &kind, payload: &payload };
            if chain::row_hash(&prev_hash, &content) != hash {
                return broken(BreakReason::HashMismatch);
            }
            checked += 1;
            expected_prev = hash;
        }
        Ok(Verification { checked, broken: None })
    }

    /// The file's schema version; a file from a newer tiller is refused.
    fn schema_version(&self) -> Result<i64, LedgerError> {
        version(&self.conn, &self.path)
    }

    /// Applies the migrations the file lacks, each in its own transaction.
    fn migrate(&self) -> Result<(), LedgerError> {
        let start = self.schema_version()? as usize;
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(start) {
            let step = step as i64;
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
                .at(&self.path)?;
            // Another process may have applied this step while this one waited for the lock.
            if version(&tx, &self.path)? > step {
                continue;
            }
            tx.execute_batch(sql).at(&self.path)?;
            tx.pragma_update(None, "user_version", step + 1).at(&self.path)?;
            tx.commit().at(&self.path)?;
        }
        Ok(())
    }
}

/// The schema version of the file `conn` reads, refused when newer than this build's.
fn version(conn: &Connection, path: &Path) -> Result<i64, LedgerError> {
    let v = conn.pragma_query_value(None, "user_version", |r| r.get(0)).at(path)?;
    if v > SCHEMA_VERSION {
        return Err(LedgerError::NewerSchema {
            path: path.to_path_buf(),
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(v)
}

/// `path` as the path part of an SQLite URI: `?` and `#` would start the query or fragment.
fn uri_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%25").replace('?', "%3f").replace('#', "%23")
}

/// Switches the file to WAL mode (a no-op once it is). The switch takes an exclusive lock, and
/// when two processes create the same new file at once SQLite reports the loser busy at once
/// instead of calling the busy handler (each holds a shared lock the other waits on), so retry.
fn enable_wal(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let start = Instant::now();
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done.at(path),
        }
    }
}

/// Adds the ledger's path to SQLite errors.
pub(crate) trait At<T> {
    fn at(self, path: &Path) -> Result<T, LedgerError>;
}

impl<T> At<T> for rusqlite::Result<T> {
    fn at(self, path: &Path) -> Result<T, LedgerError> {
        self.map_err(|source| LedgerError::Sqlite { path: path.to_path_buf(), source })
    }
}

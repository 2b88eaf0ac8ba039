//! The ledger: every model call and every action tiller takes, in one local SQLite file, so that
//! a user can always answer "what am I paying for, and what left my machine".
//!
//! Rows are append-only and hash-chained (see [`Verification`] and `chain.rs` for the exact
//! hash), several tiller processes can share one file, and a batch of entries (one agent turn) is
//! written all or nothing.
//!
//! ```no_run
//! # fn main() -> Result<(), tiller_ledger::LedgerError> {
//! use tiller_ledger::{Entry, GroupBy, Ledger, Note};
//! let ledger = Ledger::open("/tmp/ledger.db")?;
//! ledger.append(&[Entry::now("session-1", Note { topic: "hello".into(), ..Default::default() })])?;
//! assert!(ledger.verify()?.is_ok());
//! for row in ledger.summary(GroupBy::Model, None)? {
//!     println!("{} {} calls, {:.4}", row.key, row.calls, row.cost);
//! }
//! # Ok(())
//! # }
//! ```

mod chain;
mod entry;
mod error;
mod ledger;
mod query;

pub use chain::{BreakReason, Broken, Verification, sha256_hex};
pub use entry::{
    Entry, FileHashes, McpCall, ModelCall, Note, ProbeTrial, Record, Redaction, Sent, SentFile,
    ToolAction, now_ms,
};
pub use error::{LedgerError, Trouble};
pub use ledger::{Ledger, SCHEMA_VERSION};
pub use query::{GroupBy, SentSummary, StoredTrial, SummaryRow};
pub use tiller_types::{Price, PriceTable};

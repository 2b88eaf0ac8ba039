//! `tiller ledger`: what tiller recorded. Summaries of model calls (tokens, cost, latency, cache
//! hits) by day, session, model or endpoint; every call as CSV; the hash chain checked; and what
//! left the machine, per endpoint.

use tiller_ledger::{GroupBy, Ledger, LedgerError, Trouble};
use tiller_types::time::utc_timestamp;

use crate::cli::{LedgerArgs, LedgerCommand, LedgerGroup};
use crate::command_error::{CommandError, Kind};
use crate::paths;

/// The ledger every tiller process on this account shares.
pub fn open() -> Result<Ledger, CommandError> {
    Ok(Ledger::open(paths::ledger_file())?)
}

/// The ledger for reading: written to where it can be (to create or migrate it), and opened
/// read-only where the file or its directory cannot be written.
fn open_for_reading() -> Result<Ledger, CommandError> {
    let path = paths::ledger_file();
    match Ledger::open(&path) {
        Err(e) if e.trouble() == Some(Trouble::ReadOnly) && path.is_file() => {
            Ok(Ledger::open_read_only(&path)?)
        }
        opened => Ok(opened?),
    }
}

pub fn run(args: &LedgerArgs) -> Result<(), CommandError> {
    let ledger = open_for_reading()?;
    match &args.command {
        None => summary(&ledger, args.by, args.json),
        Some(LedgerCommand::Export { .. }) => Ok(ledger.export_csv(crate::out::Stdout)?),
        Some(LedgerCommand::Verify { json }) => verify(&ledger, *json),
        Some(LedgerCommand::Sent { endpoint, json }) => sent(&ledger, endpoint.as_deref(), *json),
    }
}

fn summary(ledger: &Ledger, by: LedgerGroup, json: bool) -> Result<(), CommandError> {
    let (group, title) = match by {
        LedgerGroup::Day => (GroupBy::Day, "day"),
        LedgerGroup::Session => (GroupBy::Session, "session"),
        LedgerGroup::Model => (GroupBy::Model, "model"),
        LedgerGroup::Endpoint => (GroupBy::Endpoint, "endpoint"),
    };
    let rows = ledger.summary(group, None)?;
    if json {
        for row in &rows {
            outln!("{}", serde_json::to_string(row).unwrap_or_default());
        }
        return Ok(());
    }
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0).max(title.len());
    let returned = if group == GroupBy::Model { "  returned" } else { "" };
    outln!(
        "{title:width$}  {:>6} {:>6} {:>10} {:>10} {:>10} {:>6} {:>10}  {:>7} {:>7} {:>7}{returned}",
        "calls",
        "failed",
        "prompt",
        "cached",
        "output",
        "cache",
        "cost",
        "p50",
        "p90",
        "p99"
    );
    for r in &rows {
        let unpriced = if r.unpriced_calls > 0 { "*" } else { " " };
        outln!(
            "{:width$}  {:>6} {:>6} {:>10} {:>10} {:>10} {:>5.0}% {:>10.4}{unpriced} {:>6}ms {:>6}ms {:>6}ms",
            r.key,
            r.calls,
            r.failed_calls,
            r.prompt_tokens,
            r.cached_tokens,
            r.completion_tokens,
            r.cache_hit_rate * 100.0,
            r.cost,
            r.latency_p50_ms,
            r.latency_p90_ms,
            r.latency_p99_ms
        );
        if !r.returned.is_empty() {
            outln!("  {}", r.returned.join(", "));
        }
    }
    if rows.iter().any(|r| r.unpriced_calls > 0) {
        outln!("* some calls are to a model with no price in [prices]; their cost is not counted");
    }
    Ok(())
}

fn verify(ledger: &Ledger, json: bool) -> Result<(), CommandError> {
    let result = ledger.verify()?;
    if json {
        outln!("{}", serde_json::to_string(&result).unwrap_or_default());
    }
    match &result.broken {
        None => {
            if !json {
                outln!("ok: {} entries, hash chain intact", result.checked);
            }
            Ok(())
        }
        Some(broken) => Err(CommandError::new(
            Kind::Task,
            format!(
                "the ledger's hash chain breaks at row {} ({:?}) after {} intact rows",
                broken.id, broken.reason, result.checked
            ),
        )
        .with_hint("the row was altered, or one before it was altered, removed or inserted")),
    }
}

fn sent(ledger: &Ledger, endpoint: Option<&str>, json: bool) -> Result<(), CommandError> {
    for s in ledger.sent(endpoint)? {
        if json {
            outln!("{}", serde_json::to_string(&s).unwrap_or_default());
            continue;
        }
        let time = |ms: i64| utc_timestamp((ms / 1000).max(0) as u64);
        outln!(
            "{}: {} requests, {} to {}",
            s.endpoint,
            s.requests,
            time(s.first_ms),
            time(s.last_ms)
        );
        for file in &s.files {
            let ranges: Vec<String> = file
                .lines
                .iter()
                .map(|[a, b]| if a == b { a.to_string() } else { format!("{a}-{b}") })
                .collect();
            outln!("  {}: lines {}", file.path, ranges.join(", "));
        }
    }
    Ok(())
}

impl From<LedgerError> for CommandError {
    fn from(e: LedgerError) -> Self {
        if let LedgerError::NewerSchema { .. } = e {
            return CommandError::new(Kind::Config, e.to_string());
        }
        let hint = match e.trouble() {
            None => return CommandError::new(Kind::Internal, e.to_string()),
            Some(Trouble::Busy) => {
                "another tiller process holds the ledger; try again when it has finished"
            }
            Some(Trouble::Full) => "the disk may be full: free some space where the ledger lives",
            Some(Trouble::ReadOnly) => {
                "make the data directory writable (XDG_DATA_HOME, or ~/.local/share/tiller)"
            }
            Some(Trouble::Damaged) => {
                "the file is not a tiller ledger or is damaged: move it aside and tiller starts a \
                 new one"
            }
        };
        CommandError::new(Kind::Environment, e.to_string()).with_hint(hint)
    }
}

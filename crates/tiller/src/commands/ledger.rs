//! `tiller ledger`: what tiller recorded. Summaries of model calls (tokens, cost, latency, cache
//! hits) by day, session, model or endpoint; every call as CSV; the hash chain checked; and what
//! left the machine, per endpoint.

use tiller_ledger::{GroupBy, Ledger, LedgerError};
use tiller_types::time::utc_timestamp;

use crate::cli::{LedgerArgs, LedgerCommand, LedgerGroup};
use crate::command_error::{CommandError, Kind};
use crate::paths;

/// The ledger every tiller process on this account shares.
pub fn open() -> Result<Ledger, CommandError> {
    Ok(Ledger::open(paths::ledger_file())?)
}

pub fn run(args: &LedgerArgs) -> Result<(), CommandError> {
    let ledger = open()?;
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
    outln!(
        "{title:width$}  {:>6} {:>6} {:>10} {:>10} {:>10} {:>6} {:>10}  {:>7} {:>7} {:>7}",
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
        let kind = match e {
            LedgerError::NewerSchema { .. } => Kind::Config,
            _ => Kind::Internal,
        };
        CommandError::new(kind, e.to_string())
    }
}

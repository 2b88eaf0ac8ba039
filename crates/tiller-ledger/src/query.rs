//! Reading the ledger back: cost and latency summaries, the CSV export of model calls, what
//! left the machine per endpoint, and the drift probe's trials.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::ledger::At;
use crate::{Ledger, LedgerError, ModelCall, ProbeTrial, Sent, SentFile};

/// How [`Ledger::summary`] groups model calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// UTC calendar day, `YYYY-MM-DD`.
    Day,
    Session,
    /// The model requested, so that failed and successful calls to one model share a row;
    /// the ids the endpoint returned for it are listed beside it (`returned`).
    Model,
    /// The endpoint, or `in-process:<provider>` for an embedded engine.
    Endpoint,
}

/// Totals of the model calls in one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SummaryRow {
    pub key: String,
    pub calls: u64,
    /// Calls that failed (the endpoint refused, timed out, broke off, ...).
    pub failed_calls: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Sum of the calls' costs; calls without a price add nothing and are counted in
    /// `unpriced_calls`.
    pub cost: f64,
    pub unpriced_calls: u64,
    /// Latency percentiles by nearest rank: the smallest latency that at least p% of the calls
    /// do not exceed.
    pub latency_p50_ms: u64,
    pub latency_p90_ms: u64,
    pub latency_p99_ms: u64,
    /// `cached_tokens / prompt_tokens`; 0 when there were no prompt tokens.
    pub cache_hit_rate: f64,
    /// By model: the distinct ids the endpoint said answered (llama-server returns a file path).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub returned: Vec<String>,
}

/// What left the machine for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SentSummary {
    pub endpoint: String,
    pub requests: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Every workspace file included in some request, by path, with its line ranges merged.
    pub files: Vec<SentFile>,
}

/// A probe trial as read back, with where and when it was written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredTrial {
    /// The row id: trials of one run are in the order they were graded.
    pub id: i64,
    pub time_ms: i64,
    #[serde(flatten)]
    pub trial: ProbeTrial,
}

/// One model call row as read back.
struct CallRow {
    id: i64,
    /// `YYYY-MM-DDTHH:MM:SS.SSSZ`, UTC.
    time: String,
    session: String,
    call: ModelCall,
}

const CSV_HEADER: &str = "id,time,session,provider,endpoint,model_requested,model_returned,\
    temperature,max_tokens,prompt_tokens,cached_tokens,completion_tokens,ttft_ms,latency_ms,\
    decode_tps,http_status,retries,cost,request_sha256,response_sha256,error";

impl Ledger {
    /// Model calls since `since_ms` (Unix milliseconds; all when `None`), grouped by `group_by`,
    /// ordered by key.
    pub fn summary(
        &self,
        group_by: GroupBy,
        since_ms: Option<i64>,
    ) -> Result<Vec<SummaryRow>, LedgerError> {
        let mut groups: BTreeMap<String, (SummaryRow, Vec<u64>)> = BTreeMap::new();
        self.for_each_call(since_ms, |row| {
            let c = &row.call;
            let key = match group_by {
                GroupBy::Day => row.time.get(..10).unwrap_or_default().to_owned(),
                GroupBy::Session => row.session,
                GroupBy::Model => c.model_requested.clone(),
                GroupBy::Endpoint => {
                    c.endpoint.clone().unwrap_or_else(|| format!("in-process:{}", c.provider))
                }
            };
            let (sum, latencies) = groups.entry(key).or_default();
            sum.calls += 1;
            sum.failed_calls += u64::from(c.error.is_some());
            // Saturating: one call with absurd usage must not wrap the totals.
            sum.prompt_tokens = sum.prompt_tokens.saturating_add(c.usage.prompt_tokens);
            sum.cached_tokens = sum.cached_tokens.saturating_add(c.usage.cached_tokens);
            sum.completion_tokens = sum.completion_tokens.saturating_add(c.usage.completion_tokens);
            if group_by == GroupBy::Model
                && !c.model_returned.is_empty()
                && !sum.returned.contains(&c.model_returned)
            {
                sum.returned.push(c.model_returned.clone());
            }
            match c.cost {
                Some(cost) => sum.cost += cost,
                None => sum.unpriced_calls += 1,
            }
            latencies.push(c.latency_ms);
            Ok(())
        })?;
        let rows = groups.into_iter().map(|(key, (mut sum, mut latencies))| {
            latencies.sort_unstable();
            sum.key = key;
            sum.latency_p50_ms = percentile(&latencies, 50);
            sum.latency_p90_ms = percentile(&latencies, 90);
            sum.latency_p99_ms = percentile(&latencies, 99);
            if sum.prompt_tokens > 0 {
                sum.cache_hit_rate = sum.cached_tokens as f64 / sum.prompt_tokens as f64;
            }
            sum
        });
        Ok(rows.collect())
    }

    /// Writes every model call as CSV, one row per call in id order, with a header line.
    pub fn export_csv(&self, mut out: impl Write) -> Result<(), LedgerError> {
        writeln!(out, "{CSV_HEADER}")?;
        self.for_each_call(None, |row| {
            let c = row.call;
            let opt = |v: Option<String>| v.unwrap_or_default();
            let fields = [
                row.id.to_string(),
                row.time,
                row.session,
                c.provider,
                opt(c.endpoint),
                c.model_requested,
                c.model_returned,
                opt(c.temperature.map(|t| t.to_string())),
                opt(c.max_tokens.map(|t| t.to_string())),
                c.usage.prompt_tokens.to_string(),
                c.usage.cached_tokens.to_string(),
                c.usage.completion_tokens.to_string(),
                opt(c.ttft_ms.map(|t| t.to_string())),
                c.latency_ms.to_string(),
                opt(c.decode_tps.map(|t| t.to_string())),
                opt(c.http_status.map(|s| s.to_string())),
                c.retries.to_string(),
                opt(c.cost.map(|v| v.to_string())),
                c.request_sha256,
                c.response_sha256,
                opt(c.error),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(","))?;
            Ok(())
        })?;
        out.flush()?;
        Ok(())
    }

    /// What left the machine, per endpoint (only `endpoint` when given), ordered by endpoint.
    pub fn sent(&self, endpoint: Option<&str>) -> Result<Vec<SentSummary>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, time_ms, payload FROM entries WHERE kind = 'sent' ORDER BY id")
            .at(&self.path)?;
        let mut rows = stmt.query([]).at(&self.path)?;
        let mut by_endpoint: BTreeMap<String, SentSummary> = BTreeMap::new();
        while let Some(row) = rows.next().at(&self.path)? {
            let (id, time_ms, payload): (i64, i64, String) = (
                row.get(0).at(&self.path)?,
                row.get(1).at(&self.path)?,
                row.get(2).at(&self.path)?,
            );
            let sent: Sent = self.decode(id, &payload)?;
            if endpoint.is_some_and(|e| e != sent.endpoint) {
                continue;
            }
            let summary = by_endpoint.entry(sent.endpoint.clone()).or_insert_with(|| SentSummary {
                endpoint: sent.endpoint,
                first_ms: time_ms,
                ..Default::default()
            });
            summary.requests += 1;
            summary.last_ms = time_ms;
            summary.files.extend(sent.files);
        }
        let summaries =
            by_endpoint.into_values().map(|s| SentSummary { files: merge_files(s.files), ..s });
        Ok(summaries.collect())
    }

    /// The probe trials of `suite` (every suite when `None`), in id order.
    pub fn probe_trials(&self, suite: Option<&str>) -> Result<Vec<StoredTrial>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, time_ms, payload FROM entries
                 WHERE kind = 'probe_trial'
                   AND (?1 IS NULL OR json_extract(payload, '$.suite') = ?1)
                 ORDER BY id",
            )
            .at(&self.path)?;
        let mut rows = stmt.query([suite]).at(&self.path)?;
        let mut trials = Vec::new();
        while let Some(row) = rows.next().at(&self.path)? {
            let (id, time_ms, payload): (i64, i64, String) = (
                row.get(0).at(&self.path)?,
                row.get(1).at(&self.path)?,
                row.get(2).at(&self.path)?,
            );
            trials.push(StoredTrial { id, time_ms, trial: self.decode(id, &payload)? });
        }
        Ok(trials)
    }

    /// Calls `f` with each model call since `since_ms`, in id order.
    fn for_each_call(
        &self,
        since_ms: Option<i64>,
        mut f: impl FnMut(CallRow) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, strftime('%Y-%m-%dT%H:%M:%fZ', time_ms / 1000.0, 'unixepoch'),
                        session, payload
                 FROM entries WHERE kind = 'model_call' AND time_ms >= ?1 ORDER BY id",
            )
            .at(&self.path)?;
        let mut rows = stmt.query([since_ms.unwrap_or(i64::MIN)]).at(&self.path)?;
        while let Some(row) = rows.next().at(&self.path)? {
            let id: i64 = row.get(0).at(&self.path)?;
            let payload: String = row.get(3).at(&self.path)?;
            let call = self.decode(id, &payload)?;
            f(CallRow {
                id,
                time: row.get(1).at(&self.path)?,
                session: row.get(2).at(&self.path)?,
                call,
            })?;
        }
        Ok(())
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        id: i64,
        payload: &str,
    ) -> Result<T, LedgerError> {
        serde_json::from_str(payload).map_err(|source| LedgerError::Payload {
            path: self.path.clone(),
            id,
            source,
        })
    }
}

/// The nearest-rank `p`th percentile of `sorted`; 0 when empty.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0)
}

/// One entry per path, in path order, with each path's line ranges merged.
impl SentFile {
    /// One entry per path, sorted, with overlapping or touching line ranges joined.
    pub fn merge(files: Vec<SentFile>) -> Vec<SentFile> {
        merge_files(files)
    }
}

fn merge_files(mut files: Vec<SentFile>) -> Vec<SentFile> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut merged: Vec<SentFile> = Vec::new();
    for file in files {
        match merged.last_mut() {
            Some(last) if last.path == file.path => last.lines.extend(file.lines),
            _ => merged.push(file),
        }
    }
    for file in &mut merged {
        file.lines = merge_ranges(std::mem::take(&mut file.lines));
    }
    merged
}

/// Sorts inclusive ranges and joins those that overlap or touch.
fn merge_ranges(mut ranges: Vec<[u32; 2]>) -> Vec<[u32; 2]> {
    ranges.sort_unstable();
    let mut merged: Vec<[u32; 2]> = Vec::with_capacity(ranges.len());
    for [start, end] in ranges {
        match merged.last_mut() {
            Some(last) if start <= last[1].saturating_add(1) => last[1] = last[1].max(end),
            _ => merged.push([start, end]),
        }
    }
    merged
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=10).map(|i| i * 10).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 90), 90);
        assert_eq!(percentile(&v, 99), 100);
        assert_eq!(percentile(&[7], 1), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        let merged = merge_ranges(vec![[10, 20], [1, 5], [6, 8], [15, 30], [40, 41]]);
        assert_eq!(merged, vec![[1, 8], [10, 30], [40, 41]]);
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn probe_trials_round_trip_and_filter_by_suite() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.db")).unwrap();
        let trial = |suite: &str, task: &str| ProbeTrial {
            suite: suite.into(),
            task: task.into(),
            outcome: "pass".into(),
            ttft_ms: Some(12),
            ..Default::default()
        };
        let entries: Vec<crate::Entry> = [("a", "t1"), ("b", "t1"), ("a", "t2")]
            .iter()
            .map(|(s, t)| crate::Entry::now("run", trial(s, t)))
            .collect();
        ledger.append(&entries).unwrap();
        let a = ledger.probe_trials(Some("a")).unwrap();
        let tasks: Vec<&str> = a.iter().map(|t| t.trial.task.as_str()).collect();
        assert_eq!(tasks, ["t1", "t2"]);
        assert_eq!(a[0].trial, trial("a", "t1"));
        assert!(a[0].id < a[1].id);
        assert_eq!(ledger.probe_trials(None).unwrap().len(), 3);
        assert!(ledger.probe_trials(Some("c")).unwrap().is_empty());
    }
}

//! What the agent writes to the ledger: every model call (failed ones too), every tool action
//! with the files it changed, and for a model off this machine, which file lines each request
//! carried and which secrets were redacted from it. Each is written as soon as what it records
//! has ended, so that a killed process loses no finished call or action; rows the ledger cannot
//! take (locked, disk full, read-only) are handed back for the session log to keep.

use std::time::Duration;

use tiller_ledger::{
    Entry, FileHashes, Ledger, LedgerError, McpCall, ModelCall, Record, SentFile, sha256_hex,
};
use tiller_model::{Completion, ModelError, ModelInfo, Request};
use tiller_tools::{Observation, Quote};
use tiller_types::{FileChange, PriceTable, ToolCall};

/// The ledger an agent records to, for one session.
pub struct Recorder {
    ledger: Ledger,
    session: String,
    prices: PriceTable,
    pending: Vec<Entry>,
}

impl Recorder {
    /// Records to `ledger` under `session`, pricing remote calls with `prices`.
    pub fn new(ledger: Ledger, session: impl Into<String>, prices: PriceTable) -> Recorder {
        Recorder { ledger, session: session.into(), prices, pending: Vec::new() }
    }

    pub(crate) fn push(&mut self, record: impl Into<Record>) {
        self.pending.push(Entry::now(self.session.clone(), record));
    }

    /// Writes what is pending, all or nothing; on failure it stays pending.
    pub(crate) fn flush(&mut self) -> Result<(), LedgerError> {
        if !self.pending.is_empty() {
            self.ledger.append(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Hands over what is pending, to be kept elsewhere.
    pub(crate) fn take_pending(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.pending)
    }

    /// One model call, `retries` the retries seen while it ran (the provider's own count, when
    /// larger). A call to a model on this machine costs nothing; a remote one costs what the
    /// price table says (`None` when it has no price for the model).
    pub(crate) fn model_call(
        &mut self,
        info: &ModelInfo,
        remote: bool,
        request: &Request,
        outcome: &Result<Completion, ModelError>,
        (elapsed, retries): (Duration, u32),
    ) -> String {
        let mut call = ModelCall {
            provider: info.provider.name().into(),
            endpoint: info.endpoint.clone(),
            model_requested: info.model.clone(),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            latency_ms: elapsed.as_millis() as u64,
            request_sha256: sha256_hex(&serde_json::to_vec(request).unwrap_or_default()),
            retries,
            ..ModelCall::default()
        };
        match outcome {
            Ok(done) => {
                let meta = &done.meta;
                call.model_returned = done.model.clone();
                call.usage = done.usage;
                call.ttft_ms = meta.ttft_ms;
                // A reply of a batch has no latency of its own: its share of the batch's stands.
                if meta.latency_ms > 0 {
                    call.latency_ms = meta.latency_ms;
                }
                call.latency_ms = call.latency_ms.max(1);
                call.http_status = meta.http_status;
                call.retries = retries.max(meta.retries);
                call.decode_tps = decode_rate(done);
                call.response_sha256 =
                    sha256_hex(&serde_json::to_vec(&done.message()).unwrap_or_default());
                call.cost = if remote {
                    self.prices.cost(&done.model, &info.model, &done.usage)
                } else {
                    Some(0.0)
                };
            }
            Err(e) => {
                if let ModelError::Status { status, .. } = e {
                    call.http_status = Some(*status);
                }
                call.error = Some(e.to_string());
            }
        }
        let request_sha256 = call.request_sha256.clone();
        self.push(call);
        request_sha256
    }
}

/// Completion tokens per second after the first token, when both times are known.
fn decode_rate(done: &Completion) -> Option<f64> {
    let decode_ms = done.meta.latency_ms.checked_sub(done.meta.ttft_ms?)?;
    (decode_ms > 0 && done.usage.completion_tokens > 1)
        .then(|| (done.usage.completion_tokens - 1) as f64 * 1000.0 / decode_ms as f64)
}

/// The ledger's view of a call to `tool` of the MCP server `server`: the arguments' hash, and
/// the outcome's first line and size as the server gave it.
pub(crate) fn mcp_call(
    server: &str,
    tool: &str,
    call: &ToolCall,
    obs: &Observation,
    is_error: bool,
) -> McpCall {
    let outcome = match is_error {
        false => "ok".to_string(),
        true => {
            let first = obs.text.lines().next().unwrap_or_default();
            format!("error: {}", tiller_types::text::clip(first, 200))
        }
    };
    McpCall {
        server: server.into(),
        tool: tool.into(),
        arguments_sha256: sha256_hex(call.arguments.as_bytes()),
        outcome,
        bytes: obs.text.len() as u64,
    }
}

/// The quoted lines as ledger entries, one per file, ranges merged.
pub(crate) fn sent_files<'a>(quotes: impl IntoIterator<Item = &'a Quote>) -> Vec<SentFile> {
    let files = quotes
        .into_iter()
        .map(|q| SentFile { path: q.path.clone(), lines: vec![[q.first, q.last]] })
        .collect();
    SentFile::merge(files)
}

/// Content hashes of a file before and after the `accepted` part of its change. A move is the
/// old path removed and the new one written.
pub(crate) fn file_hashes(file: &FileChange, accepted: &[bool]) -> Vec<FileHashes> {
    let hash = |text: &Option<String>| text.as_deref().map(|t| sha256_hex(t.as_bytes()));
    let before = hash(&file.old);
    let after = hash(&file.content_with(accepted));
    match &file.kind {
        tiller_types::ChangeKind::Move { to } => vec![
            FileHashes { path: file.path.clone(), before_sha256: before, after_sha256: None },
            FileHashes { path: to.clone(), before_sha256: None, after_sha256: after },
        ],
        _ => {
            vec![FileHashes { path: file.path.clone(), before_sha256: before, after_sha256: after }]
        }
    }
}

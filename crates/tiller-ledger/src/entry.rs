//! What the ledger records: an [`Entry`] (time, session, one [`Record`]) and the record kinds.
//!
//! A record is stored as its kind name plus the JSON of its struct. Add fields with
//! `#[serde(default)]` and add kinds freely; never change the meaning of a stored field, since old
//! rows are hashed as they were written.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tiller_types::Usage;

/// One row of the ledger. Serialised (with its record as `kind` and `payload`) where rows wait
/// outside the ledger until it can be written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
    /// The agent session the record belongs to.
    pub session: String,
    #[serde(flatten)]
    pub record: Record,
}

impl Entry {
    /// An entry stamped with the current time.
    pub fn now(session: impl Into<String>, record: impl Into<Record>) -> Entry {
        Entry { time_ms: now_ms(), session: session.into(), record: record.into() }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Record {
    ModelCall(ModelCall),
    ToolAction(ToolAction),
    Sent(Sent),
    Redaction(Redaction),
    Note(Note),
    ProbeTrial(ProbeTrial),
}

impl Record {
    /// The name stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::ModelCall(_) => "model_call",
            Record::ToolAction(_) => "tool_action",
            Record::Sent(_) => "sent",
            Record::Redaction(_) => "redaction",
            Record::Note(_) => "note",
            Record::ProbeTrial(_) => "probe_trial",
        }
    }

    /// The JSON stored in the `payload` column.
    pub fn payload(&self) -> Result<String, serde_json::Error> {
        match self {
            Record::ModelCall(r) => serde_json::to_string(r),
            Record::ToolAction(r) => serde_json::to_string(r),
            Record::Sent(r) => serde_json::to_string(r),
            Record::Redaction(r) => serde_json::to_string(r),
            Record::Note(r) => serde_json::to_string(r),
            Record::ProbeTrial(r) => serde_json::to_string(r),
        }
    }
}

/// One model call, successful or not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCall {
    /// `openai`, `anthropic`, `llama`, ...
    pub provider: String,
    /// The base URL called; `None` for an in-process engine.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub model_requested: String,
    /// The model the endpoint says answered.
    pub model_returned: String,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(flatten)]
    pub usage: Usage,
    /// Time to the first streamed event.
    #[serde(default)]
    pub ttft_ms: Option<u64>,
    pub latency_ms: u64,
    /// Completion tokens per second while decoding, as the engine measured it or as derived
    /// from `latency_ms - ttft_ms`.
    #[serde(default)]
    pub decode_tps: Option<f64>,
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Attempts made before the one that succeeded.
    #[serde(default)]
    pub retries: u32,
    /// Cost in the price table's currency; `None` when the model has no price (see
    /// [`PriceTable::cost`](tiller_types::PriceTable::cost)). Local providers record `Some(0.0)`.
    #[serde(default)]
    pub cost: Option<f64>,
    /// [`sha256_hex`](crate::sha256_hex) of the request as JSON in tiller's provider-neutral form
    /// (messages, tools, sampling settings), the same for every provider.
    pub request_sha256: String,
    /// [`sha256_hex`](crate::sha256_hex) of the assembled response; empty when the call failed.
    pub response_sha256: String,
    /// Why the call failed; `None` when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One tool run by the agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolAction {
    pub tool: String,
    /// The arguments as parsed (or, when they did not parse, the raw text as a JSON string).
    pub arguments: serde_json::Value,
    /// Exit status of a command; `None` for tools that are not processes.
    #[serde(default)]
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// Files the action wrote, created or deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileHashes>,
    /// For a tool of an MCP server, the call as the server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCall>,
}

/// A call to a tool of an MCP server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct McpCall {
    pub server: String,
    /// The tool's name on the server (without the `server__` prefix).
    pub tool: String,
    /// [`sha256_hex`](crate::sha256_hex) of the arguments as sent.
    pub arguments_sha256: String,
    /// `ok`, or `error: ` and the first line of what went wrong.
    pub outcome: String,
    /// Bytes of the result, before redaction and truncation.
    pub bytes: u64,
}

/// A file's content hash before and after an action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileHashes {
    /// Relative to the workspace root.
    pub path: String,
    /// `None` when the action created the file.
    pub before_sha256: Option<String>,
    /// `None` when the action deleted the file.
    pub after_sha256: Option<String>,
}

/// What left the machine in one request to a non-local endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub endpoint: String,
    /// Links this record to the [`ModelCall`] with the same hash.
    pub request_sha256: String,
    /// Workspace files whose content was part of the request.
    pub files: Vec<SentFile>,
}

/// Lines of one workspace file included in a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFile {
    /// Relative to the workspace root.
    pub path: String,
    /// Inclusive 1-based line ranges, `[first, last]`.
    pub lines: Vec<[u32; 2]>,
}

/// A secret replaced by a placeholder before a request left the machine. Never holds the
/// secret itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Redaction {
    pub endpoint: String,
    /// What was found, e.g. `aws-access-key`, `private-key`.
    pub secret_kind: String,
    /// Where it was found, e.g. `src/config.rs:12` or `tool output of call_3`.
    pub location: String,
    /// What the request carried instead.
    pub placeholder: String,
}

/// A free-form record for later kinds (loop detection, drift probes) before they earn a type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// What the note is about, e.g. `loop`.
    pub topic: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// One graded completion of a drift probe (`tiller probe run`): what was asked of which model,
/// how the answer fared against the task's tests, and how fast it came.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeTrial {
    /// Groups the trials of one `probe run`, the unit a comparison window is made of.
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub suite: String,
    /// SHA-256 of the suite's canonical content, so that changed tasks are never compared.
    #[serde(default)]
    pub suite_version: String,
    #[serde(default)]
    pub task: String,
    /// SHA-256 of the prompt as sent.
    #[serde(default)]
    pub prompt_sha256: String,
    /// Which sample of the task this is, from 0.
    #[serde(default)]
    pub sample: u32,
    #[serde(default)]
    pub provider: String,
    /// The base URL called; `None` for an in-process engine.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub model_requested: String,
    /// The model the endpoint says answered; empty when the call failed.
    #[serde(default)]
    pub model_returned: String,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// `pass`, `compile_error`, `test_failure`, `timeout`, `format_failure`, `refusal` or
    /// `api_error`.
    #[serde(default)]
    pub outcome: String,
    /// The grader's or the endpoint's last words on a trial that did not pass, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Time to the first streamed event.
    #[serde(default)]
    pub ttft_ms: Option<u64>,
    #[serde(default)]
    pub latency_ms: u64,
    /// Completion tokens per second after the first event.
    #[serde(default)]
    pub decode_tps: Option<f64>,
    /// A name the user gave the configuration (`--label`), e.g. `t0.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_label: Option<String>,
    /// Model turns the agent took, for a trial of `tiller eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
}

impl From<ModelCall> for Record {
    fn from(r: ModelCall) -> Record {
        Record::ModelCall(r)
    }
}

impl From<ToolAction> for Record {
    fn from(r: ToolAction) -> Record {
        Record::ToolAction(r)
    }
}

impl From<Sent> for Record {
    fn from(r: Sent) -> Record {
        Record::Sent(r)
    }
}

impl From<Redaction> for Record {
    fn from(r: Redaction) -> Record {
        Record::Redaction(r)
    }
}

impl From<Note> for Record {
    fn from(r: Note) -> Record {
        Record::Note(r)
    }
}

impl From<ProbeTrial> for Record {
    fn from(r: ProbeTrial) -> Record {
        Record::ProbeTrial(r)
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    // A clock before 1970 is a broken clock; record it as the epoch rather than fail the call.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_call_payload_is_flat_json() {
        let call = ModelCall {
            provider: "openai".into(),
            usage: Usage { prompt_tokens: 10, cached_tokens: 4, completion_tokens: 2 },
            latency_ms: 7,
            ..Default::default()
        };
        let record = Record::from(call.clone());
        assert_eq!(record.kind(), "model_call");
        let json: serde_json::Value = serde_json::from_str(&record.payload().unwrap()).unwrap();
        assert_eq!(json["prompt_tokens"], 10);
        assert_eq!(json["cached_tokens"], 4);
        assert_eq!(serde_json::from_value::<ModelCall>(json).unwrap(), call);
        let entry = Entry::now("s", record);
        let text = serde_json::to_string(&entry).unwrap();
        assert!(text.contains(r#""kind":"model_call""#), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), entry);
    }
}

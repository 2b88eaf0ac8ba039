//! HTTP plumbing shared by the remote providers: the client built from an [`EndpointConfig`],
//! one streamed POST with retries and backoff under the call's deadline, and a
//! server-sent-events reader. An endpoint that answers with a whole JSON completion instead of
//! a stream is understood too; any other content type is named in the error.
//!
//! Each attempt runs on a worker thread that sends the request and splits the response into
//! events, handing them over a bounded channel. The caller's thread decodes them and polls the
//! [`Cancel`] flag while it waits, so that a cancel is honoured even while the endpoint is silent
//! (a blocked socket read cannot be interrupted). An abandoned worker ends, closing its
//! connection, as soon as its read returns or times out.

use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tiller_types::text::clip;
use tiller_types::{ProviderKind, StreamEvent};

use crate::sse::read_events;
use crate::{Cancel, Collector, Completion, EgressPolicy, EndpointConfig, ModelError, ModelInfo};

/// How often a waiting call looks at the cancel flag.
const POLL: Duration = Duration::from_millis(50);
/// The first retry's delay when the endpoint gives none; doubled for each further retry.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The largest event accepted, so that a misbehaving endpoint cannot exhaust memory.
pub(crate) const MAX_EVENT: usize = 16 << 20;

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseEvent {
    /// The `event:` name; empty when the server sent none.
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// A provider's streaming wire format: turns events into [`StreamEvent`]s. A fresh decoder is
/// made for each attempt.
pub(crate) trait Decoder: Default {
    /// Handles one event; returns true when it ended the answer.
    fn event(
        &mut self,
        ev: &SseEvent,
        out: &mut Collector,
        endpoint: &str,
    ) -> Result<bool, ModelError>;

    /// Handles a clean end of the body before the end marker; returns true (after finishing the
    /// answer) when what came counts as complete anyway.
    fn eof(&mut self, _out: &mut Collector) -> bool {
        false
    }

    /// Handles a whole, non-streamed completion (`application/json`); returns true when it was
    /// one and the answer is finished.
    fn whole(
        &mut self,
        body: &str,
        out: &mut Collector,
        endpoint: &str,
    ) -> Result<bool, ModelError>;

    /// Whether anything seen so far was part of an answer in this wire format, so that a
    /// stream of chunks of some other shape is not taken for an empty answer.
    fn recognised(&self) -> bool;

    /// The model the endpoint said answered.
    fn model(&mut self) -> Option<String>;
}

/// An endpoint and the HTTP agent that talks to it.
pub(crate) struct Client {
    pub config: EndpointConfig,
    pub agent: ureq::Agent,
}

impl Client {
    pub fn new(config: EndpointConfig) -> Result<Self, ModelError> {
        let agent = http_agent(
            &config.base_url,
            &config.egress,
            config.connect_timeout,
            config.idle_timeout,
        )?;
        Ok(Client { config, agent })
    }

    pub fn info(&self, provider: ProviderKind) -> ModelInfo {
        ModelInfo {
            provider,
            model: self.config.model.clone(),
            context_length: self.config.context_length,
            endpoint: Some(self.config.base_url.clone()),
        }
    }

    /// POSTs `body` as JSON to `{base_url}/{path}` and decodes the streamed answer with `D`,
    /// which comes back with it. Transient failures are retried up to `max_retries` times, but
    /// never once part of the answer was passed on.
    pub fn stream<D: Decoder>(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &impl Serialize,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<(Completion, D), ModelError> {
        let url = format!("{}/{path}", self.config.base_url.trim_end_matches('/'));
        let body: Arc<str> = serde_json::to_string(body)
            .map_err(|e| ModelError::Config(format!("cannot encode the request: {e}")))?
            .into();
        let mut out = Collector::new(on_event);
        let mut retries = 0;
        let deadline = Instant::now().checked_add(self.config.deadline);
        loop {
            let mut decoder = D::default();
            let attempt = Attempt { url: &url, headers, body: &body, cancel, deadline };
            let failure = match self.attempt(&attempt, &mut decoder, &mut out) {
                Ok(status) => {
                    let model = decoder.model().unwrap_or_else(|| self.config.model.clone());
                    return Ok((out.finish(model, Some(status), retries), decoder));
                }
                Err(failure) => failure,
            };
            if retries >= self.config.max_retries
                || out.has_output()
                || !failure.error.is_transient()
            {
                return Err(failure.error);
            }
            retries += 1;
            let delay = failure.retry_after.unwrap_or_else(|| backoff(retries));
            if deadline.is_some_and(|end| Instant::now() + delay > end) {
                return Err(past_deadline(failure, self.config.deadline));
            }
            out.emit(StreamEvent::Retry {
                attempt: retries,
                delay_ms: delay.as_millis() as u64,
                reason: failure.error.to_string(),
            });
            sleep(delay, cancel)?;
        }
    }

    /// One try: returns the HTTP status once the decoder saw the answer end.
    fn attempt<D: Decoder>(
        &self,
        a: &Attempt,
        decoder: &mut D,
        out: &mut Collector,
    ) -> Result<u16, Failure> {
        let url = a.url;
        if a.cancel.is_cancelled() {
            return Err(ModelError::Cancelled.into());
        }
        let mut req = self
            .agent
            .post(url)
            .set("content-type", "application/json")
            .set("accept", "text/event-stream");
        for (name, value) in a.headers {
            req = req.set(name, value);
        }
        let (tx, rx) = mpsc::sync_channel(64);
        let (body, idle, end) = (Arc::clone(a.body), self.config.idle_timeout, a.deadline);
        std::thread::Builder::new()
            .name("tiller-http".into())
            .spawn(move || fetch(req, &body, idle, end, &tx))
            .map_err(|e| ModelError::Connect {
                endpoint: url.into(),
                reason: format!("cannot start the request thread: {e}"),
            })?;

        let mut status = 0;
        // The first event, quoted when the stream turns out to hold no answer.
        let mut first: Option<String> = None;
        let past = || a.deadline.is_some_and(|end| Instant::now() >= end);
        let secs = self.config.deadline.as_secs_f64().ceil() as u64;
        let too_late = || Failure::from(ModelError::Deadline { endpoint: url.into(), secs });
        loop {
            if past() {
                return Err(too_late());
            }
            let msg = match rx.recv_timeout(POLL) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) if !a.cancel.is_cancelled() => continue,
                Err(RecvTimeoutError::Timeout) => return Err(ModelError::Cancelled.into()),
                Err(RecvTimeoutError::Disconnected) if past() => return Err(too_late()),
                Err(RecvTimeoutError::Disconnected) => return Err(truncated(url).into()),
            };
            if a.cancel.is_cancelled() {
                return Err(ModelError::Cancelled.into());
            }
            let done = match msg {
                Msg::Open(code) => {
                    status = code;
                    false
                }
                Msg::Event(ev) => {
                    first.get_or_insert_with(|| ev.data.clone());
                    decoder.event(&ev, out, url)?
                }
                Msg::Whole(body) => {
                    first.get_or_insert_with(|| body.clone());
                    decoder.whole(&body, out, url)?
                        || return Err(unrecognised(url, "the JSON answer", &body).into())
                }
                Msg::Eof if decoder.eof(out) => true,
                Msg::Eof => return Err(truncated(url).into()),
                // The request thread's own timeout at the deadline reads as a silence.
                Msg::Failed(_) if past() => return Err(too_late()),
                Msg::Failed(failure) => return Err(failure),
            };
            if done && !decoder.recognised() && !out.has_output() {
                let first = first.unwrap_or_default();
                return Err(unrecognised(url, "the stream", &first).into());
            }
            if done {
                return Ok(status);
            }
        }
    }
}

/// What one attempt sends, and until when it may run.
struct Attempt<'a> {
    url: &'a str,
    headers: &'a [(&'a str, String)],
    body: &'a Arc<str>,
    cancel: &'a Cancel,
    /// None when the configured deadline is too far off to represent.
    deadline: Option<Instant>,
}

/// An answer with nothing in it this wire format knows.
fn unrecognised(endpoint: &str, what: &str, first: &str) -> ModelError {
    ModelError::Malformed {
        endpoint: endpoint.into(),
        detail: format!("{what} held no answer this API sends; it began `{}`", excerpt(first, 120)),
    }
}

/// The error for a failure whose next try would start after the deadline; a wait the endpoint
/// asked for is named.
fn past_deadline(failure: Failure, deadline: Duration) -> ModelError {
    match (failure.error, failure.retry_after) {
        (ModelError::Status { endpoint, status, body }, Some(wait)) => {
            let (wait, deadline) = (wait.as_secs_f64().ceil(), deadline.as_secs_f64().ceil());
            let body = format!(
                "{body} (it asks to retry after {wait} s, past the call's deadline of {deadline} s)"
            );
            ModelError::Status { endpoint, status, body }
        }
        (error, _) => error,
    }
}

/// What the request thread reports.
enum Msg {
    /// The endpoint answered with this success status; events follow.
    Open(u16),
    Event(SseEvent),
    /// A whole JSON body, sent instead of an event stream.
    Whole(String),
    /// The body ended cleanly.
    Eof,
    Failed(Failure),
}

/// A failed attempt, with the delay the endpoint asked for before the next one.
pub(crate) struct Failure {
    pub error: ModelError,
    retry_after: Option<Duration>,
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        Failure { error, retry_after: None }
    }
}

/// The request thread: sends the request, then streams the response's events to `tx` until the
/// body ends, the receiver is gone or the deadline `end` passed.
fn fetch(
    req: ureq::Request,
    body: &str,
    idle: Duration,
    end: Option<Instant>,
    tx: &SyncSender<Msg>,
) {
    let endpoint = req.url().to_string();
    let msg = match req.send_string(body) {
        Ok(resp) if (200..300).contains(&resp.status()) => {
            if tx.send(Msg::Open(resp.status())).is_err() {
                return;
            }
            let kind = resp
                .header("content-type")
                .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
            let reader = Until { inner: resp.into_reader(), end };
            let result = match kind.as_deref() {
                // Some servers send their stream without a content type.
                None | Some("text/event-stream") => {
                    read_events(BufReader::new(reader), |ev| tx.send(Msg::Event(ev)).is_ok())
                        .map(|()| Msg::Eof)
                }
                Some(kind) => read_body(reader).map(|body| {
                    if kind == "application/json" || kind.ends_with("+json") {
                        return Msg::Whole(body);
                    }
                    Msg::Failed(
                        ModelError::Malformed {
                            endpoint: endpoint.clone(),
                            detail: format!(
                                "the answer is {kind}, not an event stream: `{}`",
                                excerpt(&body, 120)
                            ),
                        }
                        .into(),
                    )
                }),
            };
            result.unwrap_or_else(|e| Msg::Failed(io_error(&e, &endpoint, idle).into()))
        }
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => Msg::Failed(status_failure(resp)),
        Err(ureq::Error::Transport(t)) => Msg::Failed(transport_error(&t, &endpoint, idle).into()),
    };
    // The receiver is gone when the call was cancelled; nobody is left to tell.
    let _ = tx.send(msg);
}

/// A reader that fails once its deadline passed, so that a request thread fed a steady stream
/// of keep-alive comments ends with the call.
struct Until<R> {
    inner: R,
    end: Option<Instant>,
}

impl<R: Read> Read for Until<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.end.is_some_and(|end| Instant::now() >= end) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "past the call's deadline"));
        }
        self.inner.read(buf)
    }
}

/// A whole response body, up to the largest event accepted.
pub fn read_body(reader: impl Read) -> io::Result<String> {
    let mut raw = Vec::new();
    reader.take(MAX_EVENT as u64 + 1).read_to_end(&mut raw)?;
    if raw.len() > MAX_EVENT {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "answer larger than 16 MiB"));
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// An HTTP agent for `url`: `url` checked against `egress` now, every connection resolved
/// through it, redirects left to the caller, and the policy's proxy, never the environment's.
pub fn http_agent(
    url: &str,
    egress: &EgressPolicy,
    connect: Duration,
    idle: Duration,
) -> Result<ureq::Agent, ModelError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ModelError::Config(format!(
            "endpoint `{url}` is not an http:// or https:// URL"
        )));
    }
    egress.check(url)?;
    let mut builder = ureq::AgentBuilder::new();
    if let Some(proxy) = &egress.proxy {
        egress.check(proxy)?;
        let proxy = ureq::Proxy::new(proxy)
            .map_err(|e| ModelError::Config(format!("egress.proxy `{proxy}`: {e}")))?;
        builder = builder.proxy(proxy);
    }
    let egress = egress.clone();
    Ok(builder
        .resolver(move |netloc: &str| egress.resolve(netloc))
        .timeout_connect(connect)
        .timeout_read(idle)
        .timeout_write(idle)
        .redirects(0)
        .try_proxy_from_env(false)
        // ureq 2 reads the response head of a reused connection without the read timeout,
        // where a stalled endpoint would hang the call; a fresh connection each call is cheap
        // next to a model's answer.
        .max_idle_connections(0)
        .user_agent(concat!("tiller/", env!("CARGO_PKG_VERSION")))
        .build())
}

/// A failed request as the providers say it: the endpoint's HTTP status with the gist of its
/// body, or why it could not be reached.
pub fn http_failure(e: ureq::Error, endpoint: &str, idle: Duration) -> ModelError {
    match e {
        ureq::Error::Status(_, resp) => status_failure(resp).error,
        ureq::Error::Transport(t) => transport_error(&t, endpoint, idle),
    }
}

pub(crate) fn status_failure(resp: ureq::Response) -> Failure {
    let (endpoint, status) = (resp.get_url().to_string(), resp.status());
    let retry_after = retry_after(&resp);
    let mut raw = Vec::new();
    // Only the start of an error body is shown; failing to read it leaves it empty.
    let _ = resp.into_reader().take(16 << 10).read_to_end(&mut raw);
    Failure {
        error: ModelError::Status {
            endpoint,
            status,
            body: error_message(&String::from_utf8_lossy(&raw)),
        },
        retry_after,
    }
}

/// The gist of an error body: the `error.message` both APIs use, or the start of the text.
fn error_message(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = json.as_ref().and_then(|v| {
        let error = v.get("error").unwrap_or(v);
        error.get("message").unwrap_or(error).as_str()
    });
    excerpt(message.unwrap_or(body), 300)
}

pub(crate) fn transport_error(t: &ureq::Transport, endpoint: &str, idle: Duration) -> ModelError {
    let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<io::Error>());
    match (t.kind(), io) {
        (ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed, _) => ModelError::Connect {
            endpoint: endpoint.into(),
            reason: io.map_or_else(|| t.to_string(), io::Error::to_string),
        },
        (ureq::ErrorKind::Io, Some(e)) => io_error(e, endpoint, idle),
        (ureq::ErrorKind::Io, None) => truncated(endpoint),
        (ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader, _) => {
            ModelError::Malformed { endpoint: endpoint.into(), detail: t.to_string() }
        }
        _ => ModelError::Config(t.to_string()),
    }
}

/// A failed read: a timeout, bytes that are no event stream, or a dropped connection.
pub(crate) fn io_error(e: &io::Error, endpoint: &str, idle: Duration) -> ModelError {
    match e.kind() {
        // Unix reports a socket read timeout as `WouldBlock`.
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ModelError::Timeout {
            endpoint: endpoint.into(),
            secs: idle.as_secs_f64().ceil() as u64,
        },
        io::ErrorKind::InvalidData => {
            ModelError::Malformed { endpoint: endpoint.into(), detail: e.to_string() }
        }
        _ => truncated(endpoint),
    }
}

fn truncated(endpoint: &str) -> ModelError {
    ModelError::Truncated { endpoint: endpoint.into() }
}

/// Parses one event's JSON, quoting the start of it when it is malformed.
pub(crate) fn parse<T: DeserializeOwned>(endpoint: &str, data: &str) -> Result<T, ModelError> {
    serde_json::from_str(data).map_err(|e| ModelError::Malformed {
        endpoint: endpoint.into(),
        detail: format!("{e} in `{}`", excerpt(data, 120)),
    })
}

/// An error the endpoint sent inside the stream.
pub(crate) fn remote(endpoint: &str, kind: Option<String>, message: Option<String>) -> ModelError {
    ModelError::Remote {
        endpoint: endpoint.into(),
        kind: kind.unwrap_or_else(|| "error".into()),
        message: message.unwrap_or_default(),
    }
}

/// The first `max` characters of `text` on one line, marked when cut.
fn excerpt(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    clip(&line, max).into_owned()
}

/// The delay before retry number `n` (from 1) when the endpoint named none.
pub(crate) fn backoff(n: u32) -> Duration {
    BACKOFF_BASE.saturating_mul(1 << n.saturating_sub(1).min(16)).min(BACKOFF_CAP)
}

/// Sleeps for `delay`, returning early with an error if the call is cancelled meanwhile.
fn sleep(delay: Duration, cancel: &Cancel) -> Result<(), ModelError> {
    let end = std::time::Instant::now() + delay;
    loop {
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// The delay a 429 or 503 asks for: `retry-after-ms` (OpenAI), or `Retry-After` in seconds or
/// as an HTTP date.
fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    // Absurd values (negative, infinite) count as none.
    let secs = |v: &str, scale: f64| {
        Duration::try_from_secs_f64(v.trim().parse::<f64>().ok()? / scale).ok()
    };
    if let Some(d) = resp.header("retry-after-ms").and_then(|v| secs(v, 1000.0)) {
        return Some(d);
    }
    let value = resp.header("retry-after")?;
    secs(value, 1.0).or_else(|| {
        let at = http_date(value)?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    })
}

/// Parses an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else {
        return None;
    };
    // Days since 1970-01-01 in the proleptic Gregorian calendar, counting years from March so
    // that the leap day comes last.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + m * 60 + sec).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(raw: &str) -> Vec<SseEvent> {
        let mut out = Vec::new();
        read_events(raw.as_bytes(), |ev| {
            out.push(ev);
            true
        })
        .unwrap();
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn reads_events_names_multiline_data_and_comments() {
        let raw = ": keep-alive\r\n\r\ndata:\n\nevent: ping\r\ndata: {}\r\n\r\ndata: a\ndata:b\nid: 7\nretry: 10\n\ndata: [DONE]\n\n";
        assert_eq!(events(raw), [ev("ping", "{}"), ev("", "a\nb"), ev("", "[DONE]")]);
    }

    #[test]
    fn last_event_without_blank_line_counts_but_a_partial_line_does_not() {
        assert_eq!(events("data: 1\n\ndata: 2\n"), [ev("", "1"), ev("", "2")]);
        assert_eq!(events("data: 1\n\ndata: {\"cut"), [ev("", "1")]);
    }

    #[test]
    fn stops_when_the_consumer_does() {
        let mut seen = 0;
        read_events("data: 1\n\ndata: 2\n\n".as_bytes(), |_| {
            seen += 1;
            false
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn invalid_utf8_is_invalid_data() {
        let err = read_events(&b"data: \xff\n\n"[..], |_| true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(40), BACKOFF_CAP);
    }

    #[test]
    fn parses_http_dates() {
        let at = http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        let leap = http_date("Thu, 29 Feb 2024 00:00:00 GMT").unwrap();
        assert_eq!(leap.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 1_709_164_800);
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date("soon"), None);
    }

    #[test]
    fn error_bodies_are_boiled_down() {
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(error_message(body), "invalid x-api-key");
        assert_eq!(error_message("  Bad\n  gateway "), "Bad gateway");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}

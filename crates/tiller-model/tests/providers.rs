//! The remote providers against a real HTTP server on loopback. The server replays recorded
//! streams from `tests/fixtures/` one line per HTTP chunk, injects scripted faults, and keeps
//! every request it received so that tests can check what was sent. Tests that apply to both
//! wire formats are written once, taking an [`Api`], and run for each (see `for_both!`).

// Shared test bodies and helpers are plain functions, which the lint's test exemption misses.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tiller_model::{
    Anthropic, Cancel, Completion, EgressPolicy, EndpointConfig, ModelError, OpenAi, Provider,
    Request, ToolChoice,
};
use tiller_types::{Message, StopReason, StreamEvent, ToolCall, ToolSpec, Usage};

/// What the server does with one connection.
#[derive(Clone)]
enum Reply {
    /// 200 with a fixture's event stream, ending as `End` says.
    Sse(String, End),
    /// An error status, with extra header lines and a body.
    Status(u16, &'static str, &'static str),
    /// 200 with this content type and whole body.
    Body(&'static str, String),
    /// 200 with an event stream of keep-alive comments that never ends.
    KeepAlive,
}

/// How a streamed reply ends. The marker names the event after which the stream is cut (its
/// first line containing the marker, through the blank line after it); "" cuts before any.
#[derive(Clone, Copy)]
enum End {
    Whole,
    /// The body ends cleanly (chunked terminator) after the marker.
    Eof(&'static str),
    /// The connection is reset after the marker.
    Reset(&'static str),
    /// The server goes silent after the marker, for longer than any idle timeout used here.
    Stall(&'static str),
}

/// A request as the server received it.
struct Received {
    path: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

/// A loopback server answering the n-th connection with the n-th reply (the last one repeats).
struct Server {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// How many `End::Stall` silences have run their full length.
    stalls_over: Arc<AtomicUsize>,
}

impl Server {
    fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let stalls_over = Arc::new(AtomicUsize::new(0));
        let (log, stalls) = (Arc::clone(&received), Arc::clone(&stalls_over));
        thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let reply = &replies[n.min(replies.len() - 1)];
                serve(conn.unwrap(), reply, &log);
                if matches!(reply, Reply::Sse(_, End::Stall(_))) {
                    stalls.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Server { url, received, stalls_over }
    }

    fn hits(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Whether a stall has run its full length, i.e. a call waiting on it was not ended early.
    fn stall_over(&self) -> bool {
        self.stalls_over.load(Ordering::SeqCst) > 0
    }
}

fn serve(mut conn: TcpStream, reply: &Reply, log: &Mutex<Vec<Received>>) {
    // The head is read a byte at a time so that nothing of the body is read ahead.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if conn.read(&mut byte).unwrap() == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.lines();
    let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let received = Received { path, headers, body: Value::Null };
    let len: usize = received.header("content-length").map_or(0, |v| v.parse().unwrap());
    // A socket closed with unread input answers with a reset: leave one byte for that.
    let reset = matches!(reply, Reply::Sse(_, End::Reset(_)));
    let mut body = vec![0; len - usize::from(reset)];
    conn.read_exact(&mut body).unwrap();
    let body = if reset || len == 0 { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    log.lock().unwrap().push(Received { body, ..received });

    // Write errors are ignored: the client may have given up, which some tests want.
    match reply {
        Reply::Status(status, extra, body) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {status} Error\r\n{extra}content-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Reply::Body(content_type, body) => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Reply::KeepAlive => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                 transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            );
            // Until the client hangs up.
            let comment = ": keep-alive\n\n";
            let chunk = format!("{:x}\r\n{comment}\r\n", comment.len());
            while conn.write_all(chunk.as_bytes()).and_then(|()| conn.flush()).is_ok() {
                thread::sleep(Duration::from_millis(20));
            }
        }
        Reply::Sse(fixture, end) => {
            let text = std::fs::read_to_string(format!(
                "{}/tests/fixtures/{fixture}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let marker = match end {
                End::Whole => None,
                End::Eof(m) | End::Reset(m) | End::Stall(m) => Some(*m),
            };
            let text = match marker {
                None => &text[..],
                Some("") => "",
                Some(m) => {
                    let at = text.find(m).unwrap();
                    &text[..at + text[at..].find("\n\n").unwrap() + 2]
                }
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                 transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            );
            for line in text.split_inclusive('\n') {
                let _ = write!(conn, "{:x}\r\n{line}\r\n", line.len());
                let _ = conn.flush();
            }
            match end {
                End::Whole | End::Eof(_) => {
                    let _ = conn.write_all(b"0\r\n\r\n");
                }
                // Give the client time to read what was sent before the reset discards it.
                End::Reset(_) => thread::sleep(Duration::from_millis(100)),
                End::Stall(_) => thread::sleep(Duration::from_secs(3)),
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    /// The value for this API.
    fn pick<T>(self, openai: T, anthropic: T) -> T {
        match self {
            Api::OpenAi => openai,
            Api::Anthropic => anthropic,
        }
    }

    fn sse(self, name: &str, end: End) -> Reply {
        Reply::Sse(format!("{}_{name}.sse", self.pick("openai", "anthropic")), end)
    }

    fn provider(self, url: &str, tweak: impl FnOnce(&mut EndpointConfig)) -> Box<dyn Provider> {
        let mut config = EndpointConfig {
            base_url: url.into(),
            model: "test-model".into(),
            api_key: Some("sk-test".into()),
            context_length: 8192,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
            max_retries: 2,
            egress: EgressPolicy::default(),
        };
        tweak(&mut config);
        match self {
            Api::OpenAi => Box::new(OpenAi::new(config).unwrap()),
            Api::Anthropic => Box::new(Anthropic::new(config).unwrap()),
        }
    }

    /// One call with `req`, returning its result and the events it streamed.
    fn call_with(
        self,
        url: &str,
        tweak: impl FnOnce(&mut EndpointConfig),
        req: &Request,
    ) -> (Result<Completion, ModelError>, Vec<StreamEvent>) {
        let mut provider = self.provider(url, tweak);
        let mut events = Vec::new();
        let result = provider.complete(req, &Cancel::default(), &mut |e| events.push(e.clone()));
        (result, events)
    }

    fn call(self, server: &Server) -> (Result<Completion, ModelError>, Vec<StreamEvent>) {
        self.call_with(&server.url, |_| {}, &question())
    }
}

fn question() -> Request {
    Request { messages: vec![Message::user("Say hello.")], ..Request::default() }
}

fn retry_delays(events: &[StreamEvent]) -> Vec<u64> {
    let delays = events.iter().filter_map(|e| match e {
        StreamEvent::Retry { delay_ms, .. } => Some(*delay_ms),
        _ => None,
    });
    delays.collect()
}

fn text(s: &str) -> StreamEvent {
    StreamEvent::TextDelta { text: s.into() }
}

/// Runs each named test function once per API, as `name::openai` and `name::anthropic`.
macro_rules! for_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn openai() {
                super::$name(super::Api::OpenAi)
            }
            #[test]
            fn anthropic() {
                super::$name(super::Api::Anthropic)
            }
        }
    )*};
}

for_both!(
    text_answer,
    streamed_tool_calls,
    connection_reset_mid_stream,
    clean_end_without_end_marker_after_output,
    dropped_before_output_is_retried,
    rate_limited_then_answers,
    server_error_then_answers,
    server_error_every_time,
    unauthorized_is_not_retried,
    malformed_event,
    stall_past_idle_timeout,
    connection_refused,
    cancel_between_events,
    cancel_while_the_endpoint_is_silent,
    keep_alive_forever_ends_at_the_deadline,
    retry_after_past_the_deadline_gives_up_at_once,
    non_streamed_completion,
    html_with_status_200_names_its_content_type,
    stream_of_unknown_chunks_is_an_error,
);

fn text_answer(api: Api) {
    let server = Server::start(vec![api.sse("text", End::Whole)]);
    let (result, events) = api.call(&server);
    let c = result.unwrap();
    assert_eq!(c.content, "Hello, world.");
    assert_eq!(c.stop, StopReason::EndTurn);
    assert_eq!(c.model, api.pick("gpt-test-2", "claude-test-1"));
    assert_eq!((c.meta.http_status, c.meta.retries), (Some(200), 0));
    assert!(c.meta.ttft_ms.is_some());
    let usage = api.pick(
        Usage { prompt_tokens: 120, cached_tokens: 64, completion_tokens: 5 },
        // input 20 + cache read 100 + cache creation 30.
        Usage { prompt_tokens: 150, cached_tokens: 100, completion_tokens: 6 },
    );
    assert_eq!(c.usage, usage);
    let stop = StopReason::EndTurn;
    let expected =
        [text("Hello"), text(", world."), StreamEvent::Usage { usage }, StreamEvent::Done { stop }];
    assert_eq!(events, expected);
}

fn streamed_tool_calls(api: Api) {
    let server = Server::start(vec![api.sse("tool_call", End::Whole)]);
    let (result, events) = api.call(&server);
    let c = result.unwrap();
    assert_eq!(c.content, "Let me look.");
    assert_eq!(c.stop, StopReason::ToolCalls);
    // Any tool name passes through: unknown tools are the agent's business.
    let calls = [
        ToolCall {
            id: api.pick("call_abc", "toolu_01").into(),
            name: "read_file".into(),
            arguments: r#"{"path": "src/main.rs"}"#.into(),
        },
        ToolCall {
            id: api.pick("call_def", "toolu_02").into(),
            name: "made_up_tool".into(),
            arguments: r#"{"x": [1, 2]}"#.into(),
        },
    ];
    assert_eq!(c.tool_calls, calls);
    let usage = Usage { prompt_tokens: 300, cached_tokens: 256, completion_tokens: 40 };
    assert_eq!(c.usage, usage);
    let [first, second] = calls.map(|call| StreamEvent::ToolCall { call });
    let stop = StopReason::ToolCalls;
    let expected = [
        text("Let me look."),
        first,
        second,
        StreamEvent::Usage { usage },
        StreamEvent::Done { stop },
    ];
    assert_eq!(events, expected);
}

fn connection_reset_mid_stream(api: Api) {
    let server =
        Server::start(vec![api.sse("text", End::Reset("Hello")), api.sse("text", End::Whole)]);
    let (result, events) = api.call(&server);
    assert!(matches!(result, Err(ModelError::Truncated { .. })), "{result:?}");
    // Part of the answer was passed on, so trying again would repeat it.
    assert_eq!(events, [text("Hello")]);
    assert_eq!(server.hits(), 1);
}

fn clean_end_without_end_marker_after_output(api: Api) {
    let server = Server::start(vec![api.sse("text", End::Eof("Hello"))]);
    let (result, events) = api.call(&server);
    assert!(matches!(result, Err(ModelError::Truncated { .. })), "{result:?}");
    assert_eq!(events, [text("Hello")]);
    assert_eq!(server.hits(), 1);
}

fn dropped_before_output_is_retried(api: Api) {
    let server = Server::start(vec![api.sse("text", End::Eof("")), api.sse("text", End::Whole)]);
    let (result, events) = api.call(&server);
    let c = result.unwrap();
    assert_eq!((c.content.as_str(), c.meta.retries), ("Hello, world.", 1));
    assert_eq!(retry_delays(&events), [500]);
    assert_eq!(server.hits(), 2);
}

fn rate_limited_then_answers(api: Api) {
    let server = Server::start(vec![
        Reply::Status(429, "retry-after: 1\r\n", r#"{"error":{"message":"slow down"}}"#),
        api.sse("text", End::Whole),
    ]);
    let (result, events) = api.call(&server);
    let c = result.unwrap();
    let StreamEvent::Retry { attempt, delay_ms, reason } = &events[0] else {
        panic!("expected a retry first: {events:?}");
    };
    assert_eq!((*attempt, *delay_ms), (1, 1000));
    assert!(reason.contains("429") && reason.contains("slow down"), "{reason}");
    assert_eq!(events[1], text("Hello"));
    assert_eq!((c.content.as_str(), c.meta.retries), ("Hello, world.", 1));
    assert_eq!(server.hits(), 2);
}

fn server_error_then_answers(api: Api) {
    let server =
        Server::start(vec![Reply::Status(500, "", "internal error"), api.sse("text", End::Whole)]);
    let (result, events) = api.call(&server);
    let c = result.unwrap();
    assert_eq!(retry_delays(&events), [500]);
    assert_eq!((c.content.as_str(), c.meta.retries), ("Hello, world.", 1));
    assert_eq!(server.hits(), 2);
}

fn server_error_every_time(api: Api) {
    let server = Server::start(vec![Reply::Status(500, "", "internal error")]);
    let (result, events) = api.call(&server);
    match result {
        Err(ModelError::Status { status, body, .. }) => {
            assert_eq!((status, body.as_str()), (500, "internal error"));
        }
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    // max_retries is 2: three attempts, with doubling delays between them.
    assert_eq!(retry_delays(&events), [500, 1000]);
    assert_eq!(server.hits(), 3);
}

fn unauthorized_is_not_retried(api: Api) {
    let body =
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
    let server = Server::start(vec![Reply::Status(401, "", body)]);
    let (result, events) = api.call(&server);
    match result {
        Err(ModelError::Status { status, body, .. }) => {
            assert_eq!((status, body.as_str()), (401, "invalid x-api-key"));
        }
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    assert_eq!(events, []);
    assert_eq!(server.hits(), 1);
}

fn malformed_event(api: Api) {
    let server = Server::start(vec![api.sse("malformed", End::Whole)]);
    let (result, _) = api.call(&server);
    match result {
        Err(ModelError::Malformed { detail, .. }) => assert!(detail.contains("oops"), "{detail}"),
        other => panic!("expected a malformed response, got {other:?}"),
    }
    assert_eq!(server.hits(), 1);
}

fn stall_past_idle_timeout(api: Api) {
    // The server stalls for seconds, then ends the body: only the idle timeout gives Timeout.
    let server = Server::start(vec![api.sse("text", End::Stall(""))]);
    let short = |c: &mut EndpointConfig| c.idle_timeout = Duration::from_millis(300);
    let (result, events) = api.call_with(&server.url, short, &question());
    assert!(matches!(result, Err(ModelError::Timeout { .. })), "{result:?}");
    assert!(!server.stall_over());
    assert_eq!(events, []);
    assert_eq!(server.hits(), 1);
}

fn connection_refused(api: Api) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let once = |c: &mut EndpointConfig| c.max_retries = 1;
    let (result, events) = api.call_with(&url, once, &question());
    assert!(matches!(result, Err(ModelError::Connect { .. })), "{result:?}");
    assert_eq!(retry_delays(&events), [500]);
}

fn cancel_between_events(api: Api) {
    let server = Server::start(vec![api.sse("text", End::Whole)]);
    let mut provider = api.provider(&server.url, |_| {});
    let cancel = Cancel::default();
    let mut events = Vec::new();
    let result = provider.complete(&question(), &cancel, &mut |e| {
        events.push(e.clone());
        cancel.cancel();
    });
    assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
    assert_eq!(events, [text("Hello")]);
}

fn cancel_while_the_endpoint_is_silent(api: Api) {
    // Silent for 3 s against an idle timeout of 5 s: only the cancel can end the call before the
    // silence does.
    let server = Server::start(vec![api.sse("text", End::Stall("Hello"))]);
    let mut provider = api.provider(&server.url, |_| {});
    let cancel = Cancel::default();
    let canceller = cancel.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        canceller.cancel();
    });
    let result = provider.complete(&question(), &cancel, &mut |_| {});
    assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
    assert!(!server.stall_over(), "the call waited for the endpoint instead of the cancel");
}

fn keep_alive_forever_ends_at_the_deadline(api: Api) {
    let server = Server::start(vec![Reply::KeepAlive]);
    let short = |c: &mut EndpointConfig| c.deadline = Duration::from_millis(500);
    let (result, events) = api.call_with(&server.url, short, &question());
    match result {
        Err(e @ ModelError::Deadline { .. }) => {
            assert!(e.to_string().contains("deadline of 1 s"), "{e}");
        }
        other => panic!("expected the deadline, got {other:?}"),
    }
    assert_eq!((events, server.hits()), (vec![], 1));
}

fn retry_after_past_the_deadline_gives_up_at_once(api: Api) {
    let server = Server::start(vec![
        Reply::Status(429, "retry-after: 100000\r\n", r#"{"error":{"message":"slow down"}}"#),
        api.sse("text", End::Whole),
    ]);
    let (result, events) = api.call(&server);
    match result {
        Err(ModelError::Status { status: 429, body, .. }) => assert_eq!(
            body,
            "slow down (it asks to retry after 100000 s, past the call's deadline of 60 s)"
        ),
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    assert_eq!((events, server.hits()), (vec![], 1));
}

fn non_streamed_completion(api: Api) {
    let body = api.pick(
        json!({"id": "c", "object": "chat.completion", "model": "gpt-test-2",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Hello, world.",
                "tool_calls": [{"id": "call_abc", "type": "function", "function":
                    {"name": "read_file", "arguments": "{\"path\": \"a\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5}}),
        json!({"id": "m", "type": "message", "role": "assistant", "model": "claude-test-1",
            "content": [{"type": "text", "text": "Hello, world."},
                {"type": "tool_use", "id": "call_abc", "name": "read_file", "input": {"path": "a"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 12, "output_tokens": 5}}),
    );
    let server = Server::start(vec![Reply::Body("application/json", body.to_string())]);
    let (result, _) = api.call(&server);
    let c = result.unwrap();
    assert_eq!(
        (c.content.as_str(), c.stop, c.model.as_str()),
        ("Hello, world.", StopReason::ToolCalls, api.pick("gpt-test-2", "claude-test-1"))
    );
    let args: Value = serde_json::from_str(&c.tool_calls[0].arguments).unwrap();
    assert_eq!((c.tool_calls[0].name.as_str(), args), ("read_file", json!({"path": "a"})));
    assert_eq!(c.usage, Usage { prompt_tokens: 12, cached_tokens: 0, completion_tokens: 5 });
    assert_eq!(server.hits(), 1);
}

fn html_with_status_200_names_its_content_type(api: Api) {
    let page = "<html><body>Please sign in</body></html>".to_string();
    let server = Server::start(vec![Reply::Body("text/html; charset=utf-8", page)]);
    let (result, _) = api.call(&server);
    match result {
        Err(ModelError::Malformed { detail, .. }) => {
            assert!(detail.contains("text/html") && detail.contains("Please sign in"), "{detail}");
        }
        other => panic!("expected a malformed answer, got {other:?}"),
    }
    assert_eq!(server.hits(), 1);
    // JSON of no known shape is no answer either.
    let server = Server::start(vec![Reply::Body("application/json", r#"{"ok":true}"#.into())]);
    let (result, _) = api.call(&server);
    assert!(matches!(result, Err(ModelError::Malformed { .. })), "{result:?}");
}

fn stream_of_unknown_chunks_is_an_error(api: Api) {
    let server = Server::start(vec![api.sse("unknown", End::Whole)]);
    let (result, events) = api.call(&server);
    match result {
        Err(ModelError::Malformed { detail, .. }) => {
            assert!(detail.contains(api.pick("foo", "hello")), "{detail}");
        }
        other => panic!("expected a malformed answer, got {other:?}"),
    }
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::TextDelta { .. })), "{events:?}");
    assert_eq!(server.hits(), 1);
}

/// A conversation using every kind of message, and request options.
fn conversation() -> Request {
    Request {
        messages: vec![
            Message::system("Be brief."),
            Message::user("Read main.rs"),
            Message::Assistant {
                content: "Looking.".into(),
                tool_calls: vec![
                    ToolCall {
                        id: "c1".into(),
                        name: "read_file".into(),
                        arguments: r#"{"path":"src/main.rs"}"#.into(),
                    },
                    ToolCall { id: "c2".into(), name: "list_dir".into(), arguments: "{}".into() },
                ],
            },
            Message::Tool {
                call_id: "c1".into(),
                name: "read_file".into(),
                content: "fn main() {}".into(),
                is_error: false,
            },
            Message::Tool {
                call_id: "c2".into(),
                name: "list_dir".into(),
                content: "no such directory".into(),
                is_error: true,
            },
            Message::user("Thanks."),
        ],
        tools: vec![ToolSpec {
            name: "read_file".into(),
            description: "Read a file.".into(),
            parameters: schema(),
        }],
        callable: Vec::new(),
        max_tokens: Some(256),
        temperature: Some(0.2),
        stop: vec!["</done>".into()],
        tool_choice: ToolChoice::Required,
        reply_start: None,
    }
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]})
}

#[test]
fn openai_request_body_and_headers() {
    let server = Server::start(vec![Api::OpenAi.sse("text", End::Whole)]);
    let (result, _) = Api::OpenAi.call_with(&server.url, |_| {}, &conversation());
    result.unwrap();
    let call = |id: &str, name: &str, arguments: &str| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}});
    let expected = json!({
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Read main.rs"},
            {"role": "assistant", "content": "Looking.", "tool_calls": [
                call("c1", "read_file", r#"{"path":"src/main.rs"}"#),
                call("c2", "list_dir", "{}"),
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "fn main() {}"},
            {"role": "tool", "tool_call_id": "c2", "content": "no such directory"},
            {"role": "user", "content": "Thanks."},
        ],
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function":
            {"name": "read_file", "description": "Read a file.", "parameters": schema()}}],
        "tool_choice": "required",
        "max_tokens": 256,
        "temperature": 0.2,
        "stop": ["</done>"],
    });
    // A second call without a key sends no authorization, nor empty options; the output limit
    // is always there.
    let keyless = |c: &mut EndpointConfig| c.api_key = None;
    Api::OpenAi.call_with(&server.url, keyless, &question()).0.unwrap();

    let received = server.received.lock().unwrap();
    let [with_key, keyless] = &received[..] else {
        panic!("expected two requests");
    };
    assert_eq!(with_key.body, expected);
    assert_eq!(with_key.path, "/v1/chat/completions");
    assert_eq!(with_key.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(with_key.header("content-type"), Some("application/json"));
    assert_eq!(keyless.header("authorization"), None);
    let plain = json!({"model": "test-model", "messages": [{"role": "user", "content": "Say hello."}],
                       "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 2048});
    assert_eq!(keyless.body, plain);
}

#[test]
fn anthropic_request_body_and_headers() {
    let server = Server::start(vec![Api::Anthropic.sse("text", End::Whole)]);
    let (result, _) = Api::Anthropic.call_with(&server.url, |_| {}, &conversation());
    result.unwrap();
    let text = |t: &str| json!({"type": "text", "text": t});
    // Cache breakpoints: the tools, the system prompt, the last two user turns.
    let cached = |mut block: Value| {
        block["cache_control"] = json!({"type": "ephemeral"});
        block
    };
    let expected = json!({
        "model": "test-model",
        "max_tokens": 256,
        "system": [cached(text("Be brief."))],
        "messages": [
            {"role": "user", "content": [cached(text("Read main.rs"))]},
            {"role": "assistant", "content": [
                text("Looking."),
                {"type": "tool_use", "id": "c1", "name": "read_file", "input": {"path": "src/main.rs"}},
                {"type": "tool_use", "id": "c2", "name": "list_dir", "input": {}},
            ]},
            // Consecutive tool results, and the user's text after them, make one user turn.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "fn main() {}"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "no such directory",
                 "is_error": true},
                cached(text("Thanks.")),
            ]},
        ],
        "tools": [cached(json!({"name": "read_file", "description": "Read a file.", "input_schema": schema()}))],
        "tool_choice": {"type": "any"},
        "temperature": 0.2,
        "stop_sequences": ["</done>"],
        "stream": true,
    });
    // Without a limit in the request, the API's required max_tokens gets a default.
    Api::Anthropic.call_with(&server.url, |_| {}, &question()).0.unwrap();

    let received = server.received.lock().unwrap();
    let [full, plain] = &received[..] else {
        panic!("expected two requests");
    };
    assert_eq!(full.body, expected);
    assert_eq!(full.path, "/v1/messages");
    assert_eq!(full.header("x-api-key"), Some("sk-test"));
    assert_eq!(full.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(full.header("authorization"), None);
    assert_eq!(plain.body["max_tokens"], 32_000);
    let say_hello = cached(text("Say hello."));
    assert_eq!(plain.body["messages"], json!([{"role": "user", "content": [say_hello]}]));
}

#[test]
fn openai_finish_without_done_marker_is_complete() {
    let server = Server::start(vec![Api::OpenAi.sse("llamacpp_no_done", End::Whole)]);
    let (result, _) = Api::OpenAi.call(&server);
    let c = result.unwrap();
    assert_eq!(c.content, "Local answer.");
    assert_eq!(c.model, "qwen2.5-coder-7b-q4_k_m.gguf");
    // llama.cpp's timings: 10 tokens evaluated, 30 reused from the cache.
    let usage = Usage { prompt_tokens: 40, cached_tokens: 30, completion_tokens: 4 };
    assert_eq!(c.usage, usage);
}

#[test]
fn anthropic_overloaded_before_output_is_retried() {
    let server = Server::start(vec![
        Api::Anthropic.sse("overloaded", End::Whole),
        Api::Anthropic.sse("text", End::Whole),
    ]);
    let (result, events) = Api::Anthropic.call(&server);
    let c = result.unwrap();
    assert_eq!((c.content.as_str(), c.meta.retries), ("Hello, world.", 1));
    let StreamEvent::Retry { reason, .. } = &events[0] else {
        panic!("expected a retry first: {events:?}");
    };
    assert!(reason.contains("overloaded_error"), "{reason}");
}

/// Every request carries an output limit: a quarter of the context for an OpenAI-compatible
/// server (as `max_tokens`), the most current Claude models take for Anthropic.
fn output_limit_is_always_sent(api: Api) {
    let server = Server::start(vec![api.sse("text", End::Whole)]);
    api.call(&server).0.unwrap();
    let body = &server.received.lock().unwrap()[0].body;
    assert_eq!(body["max_tokens"], api.pick(2048, 32_000), "{body}");
    assert_eq!(body.get("max_completion_tokens"), None);
}

#[test]
fn output_limit_is_always_sent_to_both() {
    output_limit_is_always_sent(Api::OpenAi);
    output_limit_is_always_sent(Api::Anthropic);
}

/// Anthropic gets four cache breakpoints: the tools, the system prompt, and the ends of the last
/// two user turns (the conversation so far), and reports the cache reads they earn.
#[test]
fn anthropic_marks_cache_breakpoints_and_reads_the_cache() {
    let server = Server::start(vec![Api::Anthropic.sse("text", End::Whole)]);
    let call = ToolCall { id: "t1".into(), name: "read".into(), arguments: "{}".into() };
    let spec = |name: &str| ToolSpec {
        name: name.into(),
        description: "d".into(),
        parameters: json!({"type": "object"}),
    };
    let req = Request {
        messages: vec![
            Message::system("You are terse."),
            Message::user("Read it."),
            Message::Assistant { content: String::new(), tool_calls: vec![call] },
            Message::Tool {
                call_id: "t1".into(),
                name: "read".into(),
                content: "x".into(),
                is_error: false,
            },
        ],
        tools: vec![spec("read"), spec("write")],
        ..Request::default()
    };
    let (result, _) = Api::Anthropic.call_with(&server.url, |_| {}, &req);
    assert_eq!(result.unwrap().usage.cached_tokens, 100);
    let body = &server.received.lock().unwrap()[0].body;
    let mut marked = Vec::new();
    let mut walk = vec![(String::new(), body.clone())];
    while let Some((at, value)) = walk.pop() {
        match value {
            Value::Object(map) => {
                if map.contains_key("cache_control") {
                    marked.push(at.clone());
                }
                walk.extend(map.into_iter().map(|(k, v)| (format!("{at}/{k}"), v)));
            }
            Value::Array(items) => {
                walk.extend(items.into_iter().enumerate().map(|(i, v)| (format!("{at}/{i}"), v)));
            }
            _ => {}
        }
    }
    marked.sort();
    assert_eq!(marked, ["/messages/0/content/0", "/messages/2/content/0", "/system/0", "/tools/1"]);
    assert_eq!(body["system"][0]["text"], "You are terse.");
}

/// Ollama, recognised by its answer's fingerprint, is asked for the context the model runs with
/// (`/api/ps` when loaded, else `num_ctx` from `/api/show`), and the next calls are budgeted to
/// it rather than to the larger context configured.
#[test]
fn ollama_context_is_read_and_budgeted_to() {
    let version = Reply::Body("application/json", r#"{"version":"0.12.6"}"#.into());
    let ps = |models: &str| Reply::Body("application/json", format!(r#"{{"models":[{models}]}}"#));
    let loaded =
        r#"{"name":"test-model:latest","model":"test-model:latest","context_length":4096}"#;
    let show = Reply::Body(
        "application/json",
        r#"{"parameters":"stop \"<|im_end|>\"\nnum_ctx                        2048","model_info":{"qwen2.context_length":32768}}"#.into(),
    );
    let chat = Reply::Sse("openai_ollama.sse".into(), End::Whole);
    for (replies, want) in [
        (vec![chat.clone(), version.clone(), ps(loaded)], 4096),
        (vec![chat, version, ps(""), show], 2048),
    ] {
        let server = Server::start(replies);
        let mut provider = Api::OpenAi.provider(&server.url, |c| c.context_length = 32_768);
        let c = provider.complete(&question(), &Cancel::default(), &mut |_| {}).unwrap();
        assert_eq!(c.content, "Hi.");
        assert_eq!(provider.info().context_length, want);
        let received = server.received.lock().unwrap();
        let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths[..3], ["/v1/chat/completions", "/api/version", "/api/ps"]);
        if want == 2048 {
            assert_eq!(
                (paths[3], &received[3].body),
                ("/api/show", &json!({"model": "test-model"}))
            );
        }
    }
}

/// A server that is not Ollama is asked nothing more than the calls.
#[test]
fn other_servers_are_not_probed() {
    let server = Server::start(vec![Api::OpenAi.sse("text", End::Whole)]);
    let mut provider = Api::OpenAi.provider(&server.url, |_| {});
    for _ in 0..2 {
        provider.complete(&question(), &Cancel::default(), &mut |_| {}).unwrap();
    }
    assert_eq!(server.hits(), 2);
    assert_eq!(provider.info().context_length, 8192);
}

#[test]
fn lists_the_endpoints_models() {
    let list = r#"{"object":"list","data":[{"id":"qwen2.5-coder-7b","object":"model"},{"id":"gemma3","object":"model"}]}"#;
    let server = Server::start(vec![Reply::Body("application/json", list.into())]);
    let config = EndpointConfig {
        base_url: server.url.clone(),
        model: String::new(),
        api_key: Some("sk-test".into()),
        context_length: 8192,
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(60),
        max_retries: 0,
        egress: EgressPolicy::default(),
    };
    assert_eq!(OpenAi::new(config).unwrap().models().unwrap(), ["qwen2.5-coder-7b", "gemma3"]);
    let received = server.received.lock().unwrap();
    assert_eq!(received[0].path, "/v1/models");
    assert_eq!(received[0].header("authorization"), Some("Bearer sk-test"));
}

/// A model Ollama had not loaded yet is asked about again once a call loaded it: the server's
/// own default (here 32,768 via OLLAMA_CONTEXT_LENGTH) shows only then, and the budget rises to
/// it, never past the context configured.
#[test]
fn ollama_is_asked_again_once_the_model_is_loaded() {
    let json = |body: &str| Reply::Body("application/json", body.into());
    let chat = Reply::Sse("openai_ollama.sse".into(), End::Whole);
    let version = json(r#"{"version":"0.12.6"}"#);
    let loaded = r#"{"models":[{"name":"test-model:latest","context_length":32768}]}"#;
    let server = Server::start(vec![
        chat.clone(),
        version.clone(),
        json(r#"{"models":[]}"#),
        json(r#"{"parameters":""}"#),
        chat.clone(),
        version,
        json(loaded),
        chat,
    ]);
    let mut provider = Api::OpenAi.provider(&server.url, |c| c.context_length = 16_384);
    for budget in [4096, 16_384, 16_384] {
        provider.complete(&question(), &Cancel::default(), &mut |_| {}).unwrap();
        assert_eq!(provider.info().context_length, budget);
    }
    assert_eq!(server.hits(), 8, "settled: nothing more is asked");
}

//! Model endpoints on loopback for the tests of several crates (included with `#[path]`): read
//! a request, answer it whole, and a server that answers the n-th request with the n-th reply.
// Each test binary uses a part of this file.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Reads one HTTP request off `stream` and returns its body.
pub fn read_body(stream: &TcpStream) -> Vec<u8> {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = Vec::new();
    reader.take(length).read_to_end(&mut body).unwrap();
    body
}

/// Writes a whole response: `status` (such as `200 OK`), `headers` (each ending in CRLF) and
/// `body`; the connection closes after it.
pub fn respond(stream: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let head = format!("HTTP/1.1 {status}\r\n{headers}connection: close\r\n");
    let _ = write!(stream, "{head}content-length: {}\r\n\r\n{body}", body.len());
}

/// Writes `events` as a whole `200 OK` event stream.
pub fn respond_events(stream: &mut TcpStream, events: &str) {
    respond(stream, "200 OK", "content-type: text/event-stream\r\n", events);
}

/// OpenAI-style streamed chat chunks as events, `[DONE]` last.
pub fn chat_events(chunks: &[serde_json::Value]) -> String {
    let mut events: String = chunks.iter().map(|chunk| format!("data: {chunk}\n\n")).collect();
    events.push_str("data: [DONE]\n\n");
    events
}

/// The chat chunk of a whole reply `text` from `model`.
pub fn chat_reply(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]})
}

/// Request bodies as a server received them, as JSON (`null` where one is not).
pub type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A loopback endpoint, one connection at a time: the n-th request (from 0) gets the event
/// stream `reply(n, body)`. Returns its base URL (`http://ADDR/v1`) and the bodies received.
pub fn serve_events(reply: impl Fn(usize, &[u8]) -> String + Send + 'static) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let received = Received::default();
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let body = read_body(&stream);
            log.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
            respond_events(&mut stream, &reply(n, &body));
        }
    });
    (url, received)
}

//! One MCP server over streamable HTTP: rmcp's transport on tiller's own HTTP client (`ureq`,
//! as for the model endpoints: the URL checked against the egress policy before anything is
//! sent, and every connection resolved through it), each request on a thread of its own and a
//! streamed answer read there, event by event.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::DynamicTransportError;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransport,
    StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
};
use rmcp::{RoleClient, ServiceExt};
use sse_stream::Sse;
use tiller_model::{EgressPolicy, http_agent, http_failure, read_body, read_events};
use tiller_types::McpServer;

use crate::McpError;
use crate::server::Listener;

/// Reaches the server at `url` and initializes the protocol, within `limit`, which also bounds
/// each silence of the server's.
pub(crate) async fn connect(
    name: &str,
    url: &str,
    entry: &McpServer,
    egress: &EgressPolicy,
    limit: Duration,
    listener: Listener,
) -> Result<RunningService<RoleClient, Listener>, McpError> {
    let failed = |detail: String| McpError::Start { server: name.into(), detail };
    let var = |var: &String| {
        std::env::var(var).map_err(|_| failed(format!("the environment variable {var} is not set")))
    };
    let agent = http_agent(url, egress, limit, limit).map_err(|e| failed(e.to_string()))?;
    let mut headers: Vec<(String, String)> = entry.http_headers.clone().into_iter().collect();
    for (header, name) in &entry.env_http_headers {
        headers.push((header.clone(), var(name)?));
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(name) = &entry.bearer_token_env_var {
        config = config.auth_header(var(name)?);
    }
    let client = Http { agent, headers: Arc::new(headers), idle: limit };
    let transport = StreamableHttpClientTransport::with_client(client, config);
    match tokio::time::timeout(limit, listener.serve(transport)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(ClientInitializeError::TransportError { error, .. })) => Err(failed(gist(&error))),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!("no answer to `initialize` within {} s", limit.as_secs()))),
    }
}

/// What went wrong on the way to a server, in this client's words where it was this client
/// that failed, without the SDK's wrapping.
pub(crate) fn gist(error: &DynamicTransportError) -> String {
    match error.error.downcast_ref::<Failure>() {
        Some(StreamableHttpError::Client(why)) => why.to_string(),
        _ => error.error.to_string(),
    }
}

/// tiller's HTTP client under rmcp's transport.
#[derive(Clone)]
struct Http {
    agent: ureq::Agent,
    /// The entry's own headers, sent with every request.
    headers: Arc<Vec<(String, String)>>,
    /// The agent's read timeout, to say what timed out.
    idle: Duration,
}

/// What went wrong on the way to a server, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

type Failure = StreamableHttpError<HttpError>;
type Events = BoxStream<'static, Result<Sse, SseError>>;

/// What a request came to.
struct Answer {
    status: u16,
    session: Option<String>,
    body: Body,
}

enum Body {
    Events(Events),
    Text(String),
}

impl Http {
    /// Sends one request on a thread of its own. A status the protocol gives a meaning to (404
    /// for a session, 405 for a stream) comes back as an answer; any other error, and a failure
    /// to connect, as its gist.
    async fn send(
        &self,
        method: &'static str,
        uri: &str,
        session: Option<&str>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
        body: Option<String>,
    ) -> Result<Answer, Failure> {
        let mut req =
            self.agent.request(method, uri).set("accept", "application/json, text/event-stream");
        let custom = custom.iter().filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)));
        for (name, value) in
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(custom)
        {
            req = req.set(name, value);
        }
        if let Some(session) = session {
            req = req.set("mcp-session-id", session);
        }
        let has_session = session.is_some();
        let meant = move |status| match status {
            404 => has_session,
            405 => method == "GET",
            _ => false,
        };
        if let Some(token) = auth {
            req = req.set("authorization", &format!("Bearer {token}"));
        }
        let (uri, idle) = (uri.to_string(), self.idle);
        let failure = move |e| {
            StreamableHttpError::Client(HttpError(http_failure(e, &uri, idle).to_string()))
        };
        off_thread(move || {
            let sent = match body {
                Some(body) => req.set("content-type", "application/json").send_string(&body),
                None => req.call(),
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(ureq::Error::Status(status, _)) if meant(status) => {
                    return Ok(Answer { status, session: None, body: Body::Text(String::new()) });
                }
                Err(e) => return Err(failure(e)),
            };
            let (status, session) =
                (resp.status(), resp.header("mcp-session-id").map(str::to_string));
            let body = if resp.content_type() == "text/event-stream" {
                Body::Events(events(resp))
            } else {
                Body::Text(read_body(resp.into_reader())?)
            };
            Ok(Answer { status, session, body })
        })
        .await?
    }
}

impl StreamableHttpClient for Http {
    type Error = HttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session: Option<Arc<str>>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let body = serde_json::to_string(&message)?;
        let answer = self.send("POST", &uri, session.as_deref(), auth, custom, Some(body)).await?;
        match answer {
            Answer { status: 404, .. } if session.is_some() => {
                Err(StreamableHttpError::SessionExpired)
            }
            Answer { status: 202 | 204, .. } => Ok(StreamableHttpPostResponse::Accepted),
            Answer { body: Body::Events(events), session, .. } => {
                Ok(StreamableHttpPostResponse::Sse(events, session))
            }
            Answer { body: Body::Text(text), .. } if text.trim().is_empty() => {
                Ok(StreamableHttpPostResponse::Accepted)
            }
            Answer { body: Body::Text(text), session, .. } => match serde_json::from_str(&text) {
                Ok(message) => Ok(StreamableHttpPostResponse::Json(message, session)),
                Err(e) => Err(StreamableHttpError::Client(HttpError(format!(
                    "{uri} answered with something that is not JSON-RPC ({e}): {}",
                    tiller_types::text::clip(&text, 200)
                )))),
            },
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session: Arc<str>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Failure> {
        self.send("DELETE", &uri, Some(&session), auth, custom, None).await.map(drop)
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session: Option<Arc<str>>,
        _last_event_id: Option<String>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<Events, Failure> {
        match self.send("GET", &uri, session.as_deref(), auth, custom, None).await? {
            Answer { body: Body::Events(events), .. } => Ok(events),
            Answer { status: 405, .. } => Err(StreamableHttpError::ServerDoesNotSupportSse),
            Answer { status, .. } => Err(StreamableHttpError::UnexpectedServerResponse(
                format!("HTTP {status} and no event stream").into(),
            )),
        }
    }
}

/// Runs `work` on a thread of its own, which the runtime does not wait for when it stops: a
/// server that stalls holds up that thread alone, until the read times out.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("tiller-mcp-http".into()).spawn(move || {
        let _ = tx.send(work());
    })?;
    rx.await.map_err(|_| StreamableHttpError::UnexpectedEndOfStream)
}

/// The server-sent events of `resp`, read on a thread of its own until the body ends or no one
/// listens any more.
fn events(resp: ureq::Response) -> Events {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let read = move || {
        let read = read_events(BufReader::new(resp.into_reader()), |event| {
            tx.blocking_send(Ok(Sse::default().data(event.data))).is_ok()
        });
        if let Err(e) = read {
            let _ = tx.blocking_send(Err(SseError::Body(Box::new(e))));
        }
    };
    // Where no thread can start, the stream ends at once.
    let _ = std::thread::Builder::new().name("tiller-mcp-events".into()).spawn(read);
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

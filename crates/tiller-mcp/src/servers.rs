//! The session's MCP servers as a [`ToolSource`]: started together the first time the tools
//! are listed, and listed again once one says its tools changed; each tool a [`Tool`] named
//! `server__tool`, calls bounded by the server's timeout and by the agent's cancel flag, and a
//! server that stopped started again on its next call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, Tool as McpTool};
use rmcp::service::ServiceError;
use tiller_tools::{
    Observation, SERVED_SEPARATOR, Tool, ToolError, ToolKind, ToolOutput, ToolSource, Workspace,
};
use tiller_types::{Cancel, McpServer, ToolSpec};
use tokio::runtime::{Handle, Runtime};

use crate::McpError;
use crate::result::result_text;
use crate::server::{Connection, Launch, Listener};

/// Seconds a server may take to start, and each call, unless its entry says.
const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// How often a call checks the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The MCP servers of a session and their tools.
pub struct McpServers {
    servers: Vec<Arc<Server>>,
    /// Names the servers' tools may not take: tiller's own tools.
    reserved: Vec<String>,
    tools: OnceLock<Vec<Box<dyn Tool>>>,
    /// Warnings not taken yet, and every one given, so that each is given once.
    warnings: Mutex<(Vec<String>, BTreeSet<String>)>,
    /// Declared last: dropped after the servers are stopped.
    runtime: Runtime,
}

/// One server and its state.
struct Server {
    name: String,
    entry: McpServer,
    launch: Launch,
    handle: Handle,
    state: Mutex<State>,
    cancel: Mutex<Cancel>,
    /// Set when the server says its tools changed since they were last listed.
    changed: Arc<AtomicBool>,
}

enum State {
    /// Not started yet, or stopped after a failed call; starts on the next use.
    Idle,
    Running(Box<Connection>),
    /// Did not start; the reason.
    Failed(String),
}

/// A server as `tiller mcp list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// `disabled`, `running`, or `failed: ` and why.
    pub state: String,
    pub tools: Vec<ToolInfo>,
}

/// A tool a server offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolInfo {
    /// As the model sees it: `server__tool`.
    pub name: String,
    pub description: String,
    /// Whether the config lets the model have it.
    pub offered: bool,
}

impl McpServers {
    /// The servers of `config` (disabled ones included, for listing), started by `launch`;
    /// their tools may not take a name in `reserved`.
    pub fn new(
        config: &BTreeMap<String, McpServer>,
        launch: Launch,
        reserved: Vec<String>,
    ) -> Result<McpServers, McpError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tiller-mcp")
            .enable_all()
            .build()
            .map_err(McpError::Runtime)?;
        let servers = config
            .iter()
            .map(|(name, entry)| {
                Arc::new(Server {
                    name: name.clone(),
                    entry: entry.clone(),
                    launch: launch.clone(),
                    handle: runtime.handle().clone(),
                    state: Mutex::new(State::Idle),
                    cancel: Mutex::default(),
                    changed: Arc::default(),
                })
            })
            .collect();
        Ok(McpServers {
            servers,
            reserved,
            tools: OnceLock::new(),
            warnings: Mutex::default(),
            runtime,
        })
    }

    /// Starts every enabled server (those not started yet) and lists what each offers.
    pub fn status(&self) -> Vec<ServerStatus> {
        let listed = self.list();
        self.servers
            .iter()
            .zip(listed)
            .map(|(server, listed)| {
                let (state, tools) = match listed {
                    _ if !server.enabled() => ("disabled".to_string(), Vec::new()),
                    Ok(tools) => ("running".to_string(), tools),
                    Err(e) => (format!("failed: {e}"), Vec::new()),
                };
                let tools = tools
                    .iter()
                    .map(|t| ToolInfo {
                        name: format!("{}{SERVED_SEPARATOR}{}", server.name, t.name),
                        description: t.description.as_deref().unwrap_or_default().to_string(),
                        offered: server.entry.offers(&t.name),
                    })
                    .collect();
                let transport = if server.entry.url.is_some() { "http" } else { "stdio" };
                ServerStatus { name: server.name.clone(), transport, state, tools }
            })
            .collect()
    }

    /// Starts the enabled servers at once, each within its timeout, and lists their tools; one
    /// result per server, in order.
    fn list(&self) -> Vec<Result<Vec<McpTool>, String>> {
        self.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (n, server) in self.servers.iter().enumerate() {
                let server = Arc::clone(server);
                set.spawn(async move {
                    if !server.enabled() {
                        return (n, Ok(Vec::new()));
                    }
                    (n, server.list_tools().await)
                });
            }
            let mut listed: Vec<_> = self.servers.iter().map(|_| Ok(Vec::new())).collect();
            while let Some(done) = set.join_next().await {
                if let Ok((n, result)) = done {
                    listed[n] = result;
                }
            }
            listed
        })
    }

    /// The tools of every server that started, with a warning for each server that did not and
    /// each tool left out.
    fn collect_tools(&self) -> Vec<Box<dyn Tool>> {
        let mut taken = self.reserved.clone();
        let mut tools: Vec<Box<dyn Tool>> = Vec::new();
        let mut warnings = Vec::new();
        for (server, listed) in self.servers.iter().zip(self.list()) {
            let listed = match listed {
                Ok(listed) => listed,
                Err(e) => {
                    warnings.push(format!("{e}; its tools are not offered"));
                    continue;
                }
            };
            for tool in listed.into_iter().filter(|t| server.entry.offers(&t.name)) {
                let name = format!("{}{SERVED_SEPARATOR}{}", server.name, tool.name);
                let fits = (1..=64).contains(&name.len())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !fits {
                    warnings.push(format!(
                        "MCP server `{}`: tool `{}` left out: its name must be letters, digits, \
                         `_` and `-`, at most 64 with the prefix",
                        server.name, tool.name
                    ));
                } else if taken.contains(&name) {
                    warnings.push(format!(
                        "MCP server `{}`: tool `{}` left out: the name `{name}` is taken",
                        server.name, tool.name
                    ));
                } else {
                    taken.push(name.clone());
                    tools.push(Box::new(ServedTool { name, tool, server: Arc::clone(server) }));
                }
            }
        }
        let mut guard = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        let (new, given) = &mut *guard;
        new.extend(warnings.into_iter().filter(|w| given.insert(w.clone())));
        tools
    }
}

impl ToolSource for McpServers {
    fn tools(&self) -> &[Box<dyn Tool>] {
        self.tools.get_or_init(|| self.collect_tools())
    }

    /// Lists every server's tools again once one said they changed.
    fn refresh(&mut self) {
        let changed = self.servers.iter().any(|s| s.changed.load(Ordering::Relaxed));
        if changed && self.tools.get().is_some() {
            self.tools = OnceLock::from(self.collect_tools());
        }
    }

    fn take_warnings(&self) -> Vec<String> {
        self.tools();
        std::mem::take(&mut self.warnings.lock().unwrap_or_else(PoisonError::into_inner).0)
    }

    fn share_cancel(&mut self, cancel: &Cancel) {
        for server in &self.servers {
            *server.cancel.lock().unwrap_or_else(PoisonError::into_inner) = cancel.clone();
        }
    }
}

impl Drop for McpServers {
    /// Stops every server that runs, with all it started.
    fn drop(&mut self) {
        let running: Vec<Connection> = self.servers.iter().filter_map(|s| s.take()).collect();
        self.runtime.block_on(async {
            for connection in running {
                connection.stop_and_explain().await;
            }
        });
    }
}

impl Server {
    fn enabled(&self) -> bool {
        self.entry.enabled.unwrap_or(true)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.entry.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection, leaving the server idle.
    fn take(&self) -> Option<Connection> {
        let state = std::mem::replace(&mut *self.lock(), State::Idle);
        match state {
            State::Running(connection) => Some(*connection),
            _ => None,
        }
    }

    /// Starts the server if it is idle; `Err` says why it is not running.
    async fn connect(&self) -> Result<Connection, String> {
        let state = std::mem::replace(&mut *self.lock(), State::Idle);
        match state {
            State::Running(connection) => return Ok(*connection),
            State::Failed(why) => {
                *self.lock() = State::Failed(why.clone());
                return Err(why);
            }
            State::Idle => {}
        }
        let listener = Listener(Arc::clone(&self.changed));
        Connection::start(&self.name, &self.entry, &self.launch, self.timeout(), listener)
            .await
            .map_err(|e| e.to_string())
    }

    /// Starts the server if need be and lists its tools. A server that fails to start stays
    /// failed for the session.
    async fn list_tools(&self) -> Result<Vec<McpTool>, String> {
        let connection = self.connect().await;
        let connection = match connection {
            Ok(connection) => connection,
            Err(why) => {
                *self.lock() = State::Failed(why.clone());
                return Err(why);
            }
        };
        // A change the server tells of from now on is not in this list.
        self.changed.store(false, Ordering::Relaxed);
        let listed = tokio::time::timeout(self.timeout(), connection.client.list_all_tools()).await;
        match listed {
            Ok(Ok(tools)) => {
                *self.lock() = State::Running(Box::new(connection));
                Ok(tools)
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer to `tools/list` within {} s", self.timeout().as_secs()),
                };
                let why = format!(
                    "MCP server `{}` did not list its tools: {why}{}",
                    self.name,
                    connection.stop_and_explain().await
                );
                *self.lock() = State::Failed(why.clone());
                Err(why)
            }
        }
    }

    /// Calls `tool` with `arguments`. A server that stops, breaks the protocol, or gives no
    /// answer within its timeout is stopped, to be started again on the next call.
    fn call(&self, tool: &str, arguments: serde_json::Value) -> Result<(String, bool), String> {
        let arguments = match arguments {
            serde_json::Value::Object(map) => Some(map),
            serde_json::Value::Null => None,
            _ => return Err("The arguments must be a JSON object.".into()),
        };
        let cancel = self.cancel.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let limit = self.timeout();
        self.handle.block_on(async {
            let connection = self.connect().await?;
            let mut params = CallToolRequestParams::new(tool.to_string());
            params.arguments = arguments;
            let call = connection.client.call_tool(params);
            let cancelled = async {
                while !cancel.is_cancelled() {
                    tokio::time::sleep(CANCEL_POLL).await;
                }
            };
            let failure = tokio::select! {
                answer = tokio::time::timeout(limit, call) => match answer {
                    Ok(Ok(result)) => {
                        *self.lock() = State::Running(Box::new(connection));
                        return Ok(result_text(&result));
                    }
                    Ok(Err(ServiceError::McpError(e))) => {
                        *self.lock() = State::Running(Box::new(connection));
                        return Err(format!("The MCP server `{}` refused the call: {}", self.name, e.message));
                    }
                    Ok(Err(ServiceError::TransportSend(e))) => format!(
                        "The MCP server `{}` failed during the call ({})",
                        self.name,
                        crate::http::gist(&e)
                    ),
                    Ok(Err(e)) => format!("The MCP server `{}` failed during the call ({e})", self.name),
                    Err(_) => format!(
                        "The MCP server `{}` gave no valid answer within {} s",
                        self.name,
                        limit.as_secs()
                    ),
                },
                () = cancelled => "The call was cancelled".to_string(),
            };
            let ended = connection.stop_and_explain().await;
            Err(format!("{failure}; the server was stopped{ended}\nIt starts again on the next call."))
        })
    }
}

/// A tool of an MCP server.
struct ServedTool {
    /// `server__tool`.
    name: String,
    tool: McpTool,
    server: Arc<Server>,
}

impl Tool for ServedTool {
    fn spec(&self) -> ToolSpec {
        let description = self.tool.description.as_deref().or(self.tool.title.as_deref());
        ToolSpec {
            name: self.name.clone(),
            description: format!(
                "{} (tool `{}` of the MCP server `{}`)",
                description.unwrap_or_default().trim(),
                self.tool.name,
                self.server.name
            ),
            parameters: serde_json::Value::Object((*self.tool.input_schema).clone()),
        }
    }

    /// Another program acts: approved like a command, and what it changes in the tree reviewed.
    fn kind(&self) -> ToolKind {
        ToolKind::Exec
    }

    fn run(&self, _: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        match self.server.call(&self.tool.name, args) {
            Ok((text, false)) => {
                Ok(ToolOutput::Text(Observation { text, ..Observation::default() }))
            }
            Ok((text, true)) => {
                Err(ToolError::Other(format!("The tool reported an error: {text}")))
            }
            Err(why) => Err(ToolError::Other(why)),
        }
    }

    fn served_by(&self) -> Option<(&str, &str)> {
        Some((&self.server.name, &self.tool.name))
    }
}

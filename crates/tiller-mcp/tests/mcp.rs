//! The MCP client against real servers: small misbehaving ones written here in Python (one that
//! does not start, crashes mid-call, answers with something that is not JSON, hangs, offers a
//! name twice, leaves a child behind, changes its tools; over HTTP, one that answers with an
//! error or with something that is not JSON), and the reference servers installed by
//! scripts/test (`@modelcontextprotocol/server-everything` from npm, over stdio and streamable
//! HTTP, and `mcp-server-time` from PyPI).
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tiller/tests/support/peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tiller_mcp::{Launch, McpServers};
use tiller_model::EgressPolicy;
use tiller_tools::{ToolError, ToolOutput, ToolSource, Workspace};
use tiller_types::McpServer;

/// A line-delimited JSON-RPC MCP server; what its tools do is the test's business.
const SERVER: &str = r#"
import json, os, subprocess, sys, time
mode = sys.argv[1]
if mode == "nostart":
    sys.stderr.write("cannot open the database\n")
    sys.exit(3)
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()
tools = [{"name": "echo", "description": "Says it back.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
         {"name": "crash", "inputSchema": {"type": "object"}},
         {"name": "garbage", "inputSchema": {"type": "object"}},
         {"name": "hang", "inputSchema": {"type": "object"}},
         {"name": "spawn", "inputSchema": {"type": "object"}},
         {"name": "grow", "inputSchema": {"type": "object"}}]
if mode == "clash":
    tools.append(tools[0])
    tools.append({"name": "bad name!", "inputSchema": {"type": "object"}})
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, rid = msg["method"], msg["id"]
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {"protocolVersion": msg["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "bad", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": tools}})
    elif method == "tools/call":
        name, args = msg["params"]["name"], msg["params"].get("arguments") or {}
        if name == "crash":
            sys.stderr.write("segmentation fault in the tool\n")
            sys.exit(139)
        if name == "garbage":
            sys.stdout.write("this is not JSON\n")
            sys.stdout.flush()
            continue
        if name == "hang":
            time.sleep(300)
        if name == "grow":
            tools.append({"name": "grown", "inputSchema": {"type": "object"}})
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        if name == "spawn":
            child = subprocess.Popen(["sleep", "300"])
            open(args["pidfile"], "w").write(f"{os.getpid()} {child.pid}")
        send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "said: " + args.get("text", "")}]}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}})
"#;

struct Fixture {
    dir: tempfile::TempDir,
    ws: Workspace,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.py"), SERVER).unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        Fixture { dir, ws }
    }

    fn entry(&self, mode: &str) -> McpServer {
        McpServer {
            command: Some("python3".into()),
            args: vec![self.dir.path().join("server.py").display().to_string(), mode.into()],
            timeout_secs: Some(2),
            ..McpServer::default()
        }
    }

    fn servers(&self, entries: &[(&str, McpServer)]) -> McpServers {
        let config: BTreeMap<String, McpServer> =
            entries.iter().map(|(n, e)| (n.to_string(), e.clone())).collect();
        let launch = Launch {
            sandbox: None,
            allow_unconfined: true,
            workspace: self.dir.path().into(),
            // Loopback, and nothing else: the allow-list is empty.
            egress: EgressPolicy { local_only: false, allow: Vec::new(), proxy: None },
        };
        McpServers::new(&config, launch, vec!["read_file".into()]).unwrap()
    }
}

fn call(servers: &McpServers, ws: &Workspace, name: &str, args: serde_json::Value) -> String {
    let tool = servers.tools().iter().find(|t| t.spec().name == name).expect(name);
    match tool.run(ws, args) {
        Ok(ToolOutput::Text(obs)) => obs.text,
        Ok(ToolOutput::Change(_)) => panic!("a change"),
        Err(ToolError::Other(text)) => format!("error: {text}"),
        Err(e) => panic!("{e}"),
    }
}

/// Has the server `bad` start a child of its own; the pids of the server and the child.
fn spawned(fx: &Fixture, servers: &McpServers) -> (String, String) {
    let pidfile = fx.dir.path().join("pids");
    let args = serde_json::json!({"pidfile": pidfile.display().to_string()});
    call(servers, &fx.ws, "bad__spawn", args);
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    let (server, child) = pids.split_once(' ').unwrap();
    (server.to_string(), child.to_string())
}

fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie is dead for our purpose.
    !stat.is_empty() && !stat.contains(") Z ")
}

#[test]
fn tools_are_named_by_server_and_called() {
    let fx = Fixture::new();
    let servers = fx.servers(&[("bad", fx.entry("ok"))]);
    let names: Vec<String> = servers.tools().iter().map(|t| t.spec().name).collect();
    assert_eq!(
        names,
        ["bad__echo", "bad__crash", "bad__garbage", "bad__hang", "bad__spawn", "bad__grow"]
    );
    let spec = servers.tools()[0].spec();
    assert_eq!(spec.parameters["properties"]["text"]["type"], "string");
    assert!(spec.description.starts_with("Says it back."), "{}", spec.description);
    assert_eq!(servers.tools()[0].served_by(), Some(("bad", "echo")));
    let said = call(&servers, &fx.ws, "bad__echo", serde_json::json!({"text": "hi"}));
    assert_eq!(said, "said: hi");
    assert!(servers.take_warnings().is_empty());
}

#[test]
fn a_crash_mid_call_is_an_observation_and_the_server_starts_again() {
    let fx = Fixture::new();
    let servers = fx.servers(&[("bad", fx.entry("ok"))]);
    let crashed = call(&servers, &fx.ws, "bad__crash", serde_json::json!({}));
    assert!(crashed.starts_with("error: The MCP server `bad` failed during the call"), "{crashed}");
    assert!(crashed.contains("segmentation fault in the tool"), "{crashed}");
    assert!(crashed.contains("It starts again on the next call."), "{crashed}");
    let said = call(&servers, &fx.ws, "bad__echo", serde_json::json!({"text": "again"}));
    assert_eq!(said, "said: again");
}

#[test]
fn invalid_json_and_a_hang_time_out_and_the_server_is_stopped() {
    let fx = Fixture::new();
    let servers = fx.servers(&[("bad", fx.entry("ok"))]);
    let (server, _) = spawned(&fx, &servers);
    for tool in ["bad__garbage", "bad__hang"] {
        let started = Instant::now();
        let text = call(&servers, &fx.ws, tool, serde_json::json!({}));
        assert!(text.contains("gave no valid answer within 2 s; the server was stopped"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(!alive(&server), "the server that hung was stopped");
    let said = call(&servers, &fx.ws, "bad__echo", serde_json::json!({"text": "x"}));
    assert_eq!(said, "said: x");
}

#[test]
fn cancelling_stops_a_call_at_once() {
    let fx = Fixture::new();
    let mut servers =
        fx.servers(&[("bad", McpServer { timeout_secs: Some(60), ..fx.entry("ok") })]);
    let cancel = tiller_types::Cancel::default();
    servers.share_cancel(&cancel);
    let started = Instant::now();
    let text = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            cancel.cancel();
        });
        call(&servers, &fx.ws, "bad__hang", serde_json::json!({}))
    });
    assert!(text.starts_with("error: The call was cancelled; the server was stopped"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn servers_that_do_not_start_or_clash_give_warnings() {
    let fx = Fixture::new();
    let missing = McpServer { command: Some("/nonexistent/mcp".into()), ..McpServer::default() };
    let off = McpServer { enabled: Some(false), ..fx.entry("ok") };
    let servers = fx.servers(&[
        ("broken", fx.entry("nostart")),
        ("clash", fx.entry("clash")),
        ("missing", missing),
        ("off", off),
    ]);
    let names: Vec<String> = servers.tools().iter().map(|t| t.spec().name).collect();
    assert!(names.iter().all(|n| n.starts_with("clash__")), "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "clash__echo").count(), 1);
    let warnings = servers.take_warnings().join("\n");
    assert!(warnings.contains("MCP server `broken` did not start"), "{warnings}");
    assert!(warnings.contains("cannot open the database"), "{warnings}");
    assert!(warnings.contains("MCP server `missing` did not start: cannot run /nonexistent/mcp"));
    assert!(warnings.contains("tool `echo` left out: the name `clash__echo` is taken"));
    assert!(warnings.contains("tool `bad name!` left out"), "{warnings}");
    assert!(servers.take_warnings().is_empty(), "each said once");
    let status = servers.status();
    let states: Vec<(&str, &str)> =
        status.iter().map(|s| (s.name.as_str(), &s.state[..s.state.len().min(6)])).collect();
    assert_eq!(
        states,
        [("broken", "failed"), ("clash", "runnin"), ("missing", "failed"), ("off", "disabl")]
    );
}

#[test]
fn dropping_the_servers_stops_them_and_what_they_started() {
    let fx = Fixture::new();
    let servers = fx.servers(&[("bad", fx.entry("ok"))]);
    let (server, child) = spawned(&fx, &servers);
    assert!(alive(&server) && alive(&child));
    drop(servers);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(&server) || alive(&child)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(&server) && !alive(&child), "no orphans left");
}

#[test]
fn the_reference_servers_answer() {
    let (Some(everything), Some(time)) = (
        peers::mcp_peer("npm/node_modules/.bin/mcp-server-everything"),
        peers::mcp_peer("venv/bin/mcp-server-time"),
    ) else {
        return;
    };
    let fx = Fixture::new();
    let stdio = |program: &Path, args: &[&str]| McpServer {
        command: Some(program.display().to_string()),
        args: args.iter().map(|a| a.to_string()).collect(),
        timeout_secs: Some(60),
        ..McpServer::default()
    };
    let servers = fx.servers(&[
        ("everything", stdio(&everything, &["stdio"])),
        ("time", stdio(&time, &["--local-timezone", "UTC"])),
    ]);
    assert!(servers.take_warnings().is_empty());
    let echoed = call(&servers, &fx.ws, "everything__echo", serde_json::json!({"message": "hi"}));
    assert_eq!(echoed, "Echo: hi");
    let args = serde_json::json!({"timezone": "Europe/Paris"});
    let now = call(&servers, &fx.ws, "time__get_current_time", args);
    assert!(now.contains("\"timezone\": \"Europe/Paris\""), "{now}");
}

fn names(servers: &McpServers) -> Vec<String> {
    servers.tools().iter().map(|t| t.spec().name).collect()
}

#[test]
fn a_changed_tool_list_is_listed_again_on_refresh() {
    let fx = Fixture::new();
    let mut servers = fx.servers(&[("bad", fx.entry("ok"))]);
    servers.refresh();
    assert!(!names(&servers).contains(&"bad__grown".to_string()));
    call(&servers, &fx.ws, "bad__grow", serde_json::json!({}));
    // The server's notice is handled beside the call's answer: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !names(&servers).contains(&"bad__grown".to_string()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        servers.refresh();
    }
    let said = call(&servers, &fx.ws, "bad__grown", serde_json::json!({"text": "new"}));
    assert_eq!(said, "said: new");
    assert_eq!(names(&servers).len(), 7);
    assert!(servers.take_warnings().is_empty());
}

#[test]
fn a_streamable_http_server_answers() {
    let Some(peer) = peers::HttpPeer::everything() else {
        return;
    };
    let fx = Fixture::new();
    let entry =
        McpServer { url: Some(peer.url.clone()), timeout_secs: Some(30), ..McpServer::default() };
    let servers = fx.servers(&[("everything", entry)]);
    assert_eq!(servers.take_warnings(), Vec::<String>::new());
    let echoed = call(&servers, &fx.ws, "everything__echo", serde_json::json!({"message": "hi"}));
    assert_eq!(echoed, "Echo: hi");
    let sum = call(&servers, &fx.ws, "everything__get-sum", serde_json::json!({"a": 2, "b": 3}));
    assert!(sum.contains('5'), "{sum}");
    let status = &servers.status()[0];
    assert_eq!((status.transport, status.state.as_str()), ("http", "running"));
    drop(peer);
    let gone = call(&servers, &fx.ws, "everything__echo", serde_json::json!({"message": "hi"}));
    assert!(
        gone.starts_with("error: The MCP server `everything` failed during the call"),
        "{gone}"
    );
    assert!(gone.contains("Connection refused"), "{gone}");
}

/// Answers a POST to `/error` with HTTP 500, to `/missing` with 404, to `/headers` with 500 and
/// the headers it got, and any other with a body that is not JSON.
const BAD_HTTP: &str = r#"
import http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        got = " ".join(self.headers.get(h, "-") for h in ["authorization", "x-team", "x-home"])
        status, body = {"/error": (500, "database down"), "/missing": (404, "no such endpoint"),
                        "/headers": (500, got)}.get(self.path, (200, "this is not JSON"))
        body = body.encode()
        self.send_response(status)
        self.send_header("content-type", "application/json" if status == 200 else "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn http_servers_unreachable_refused_or_answering_badly_give_warnings() {
    let fx = Fixture::new();
    let mut bad =
        Command::new("python3").args(["-c", BAD_HTTP]).stdout(Stdio::piped()).spawn().unwrap();
    let mut port = String::new();
    std::io::BufReader::new(bad.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let http = |url: &str| McpServer {
        url: Some(url.into()),
        timeout_secs: Some(5),
        ..McpServer::default()
    };
    let bad_at = |path: &str| http(&format!("http://127.0.0.1:{}/{path}", port.trim()));
    let headers = McpServer {
        http_headers: [("X-Team".to_string(), "core".to_string())].into(),
        env_http_headers: [("X-Home".to_string(), "HOME".to_string())].into(),
        bearer_token_env_var: Some("HOME".into()),
        ..bad_at("headers")
    };
    let unset =
        McpServer { bearer_token_env_var: Some("TILLER_TEST_UNSET".into()), ..bad_at("mcp") };
    let servers = fx.servers(&[
        ("closed", http(&format!("http://127.0.0.1:{free}/mcp"))),
        ("error", bad_at("error")),
        ("garbage", bad_at("mcp")),
        ("headers", headers),
        ("missing", bad_at("missing")),
        // TEST-NET-1: never reached, refused before any connection.
        ("remote", http("http://192.0.2.1:8080/mcp")),
        ("unset", unset),
    ]);
    assert!(servers.tools().is_empty());
    let warnings = servers.take_warnings();
    let _ = bad.kill();
    let _ = bad.wait();
    let said = |name: &str| {
        let start = format!("MCP server `{name}` did not start: ");
        let found = warnings.iter().find(|w| w.starts_with(&start));
        found.unwrap_or_else(|| panic!("{warnings:#?}")).as_str()
    };
    let home = std::env::var("HOME").unwrap();
    for (name, part) in [
        ("closed", "Connection refused".to_string()),
        ("error", "answered HTTP 500: database down".into()),
        ("garbage", "answered with something that is not JSON-RPC".into()),
        ("headers", format!("answered HTTP 500: Bearer {home} core {home}")),
        ("missing", "answered HTTP 404: no such endpoint".into()),
        ("remote", "192.0.2.1 is not on the egress allow-list".into()),
        ("unset", "the environment variable TILLER_TEST_UNSET is not set".into()),
    ] {
        assert!(said(name).contains(&part), "{}", said(name));
    }
}

//! MCP servers end to end: `tiller exec` on the scripted model calls tools of the reference
//! servers scripts/test installs (`@modelcontextprotocol/server-everything` from npm, over stdio
//! and over streamable HTTP, `mcp-server-time` from PyPI) and of a small Python server that
//! crashes mid-call, all confined by the sandbox; the results reach the model's next request,
//! the calls the ledger; an HTTP server off this machine is refused by the egress policy; and
//! `tiller mcp add|list|remove` edit and show the config.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/peers.rs"]
mod peers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Tools: `crash` exits mid-call; `probe` tries to reach a loopback port and to write a file
/// outside the workspace, and says what happened.
const SERVER: &str = r#"
import json, socket, sys
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n"); sys.stdout.flush()
def probe(args):
    said = []
    try:
        socket.create_connection(("127.0.0.1", args["port"]), timeout=2).close(); said.append("network: reached")
    except OSError as e:
        said.append(f"network: {e.strerror or e}")
    try:
        open(args["path"], "w").write("x"); said.append("write: done")
    except OSError as e:
        said.append(f"write: {e.strerror}")
    return "; ".join(said)
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": msg["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "probe", "version": "1"}}})
    elif msg["method"] == "tools/list":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": [
            {"name": "crash", "inputSchema": {"type": "object"}},
            {"name": "probe", "inputSchema": {"type": "object", "properties": {"port": {"type": "integer"}, "path": {"type": "string"}}}}]}})
    elif msg["params"]["name"] == "crash":
        sys.stderr.write("probe: out of memory\n"); sys.exit(1)
    else:
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"content": [{"type": "text", "text": probe(msg["params"]["arguments"])}]}})
"#;

struct Env {
    dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl Env {
    fn new() -> Env {
        // Outside /tmp, which the sandbox replaces with its own.
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let parent = if parent.starts_with("/tmp") { Path::new("/var/tmp") } else { parent };
        let dir = tempfile::tempdir_in(parent).unwrap();
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(home.join(".config/tiller")).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(dir.path().join("server.py"), SERVER).unwrap();
        Env { dir, home, repo }
    }

    fn config(&self) -> PathBuf {
        self.home.join(".config/tiller/config.toml")
    }

    fn tiller(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tiller"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &self.home)
            .current_dir(&self.repo)
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_calls_the_tools_of_real_servers_in_the_sandbox_and_records_them() {
    let (Some(everything), Some(time)) = (
        peers::mcp_peer("npm/node_modules/.bin/mcp-server-everything"),
        peers::mcp_peer("venv/bin/mcp-server-time"),
    ) else {
        return;
    };
    let [everything, time] =
        [everything, time].map(|p| p.canonicalize().unwrap().display().to_string());
    let env = Env::new();
    let server = env.dir.path().join("server.py").display().to_string();
    let add = |args: &[&str]| {
        let out = env.tiller(&[&["mcp", "add"][..], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    add(&["everything", "--", &everything, "stdio"]);
    add(&["time", "--", &time, "--local-timezone", "UTC"]);
    add(&["probe", "--timeout-secs", "20", "--", "python3", &server]);

    let out = env.tiller(&["mcp", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.contains("everything  stdio  running\n  everything__echo  "), "{listed}");
    assert!(listed.contains("time  stdio  running\n  time__get_current_time  "), "{listed}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let outside = env.dir.path().join("escaped.txt");
    let call = |name: &str, arguments: serde_json::Value| serde_json::json!({ "tool_calls": [ { "name": name, "arguments": arguments } ] });
    let script = serde_json::json!({ "model": "s", "turns": [
        call("everything__echo", serde_json::json!({"message": "hello from tiller"})),
        call("time__get_current_time", serde_json::json!({"timezone": "Europe/Paris"})),
        call("probe__crash", serde_json::json!({})),
        call("probe__probe", serde_json::json!({"port": port, "path": outside.display().to_string()})),
        { "text": "done" }
    ]});
    std::fs::write(env.repo.join("s.json"), script.to_string()).unwrap();
    let out = env.tiller(&["exec", "--json", "--provider", "scripted", "-m", "s.json", "go"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let results: Vec<(&str, bool)> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .map(|e| (e["output"].as_str().unwrap(), e["is_error"].as_bool().unwrap()))
        .collect();
    assert_eq!(results[0], ("Echo: hello from tiller", false));
    assert!(results[1].0.contains("\"timezone\": \"Europe/Paris\""), "{}", results[1].0);
    let crashed = results[2].0;
    assert!(crashed.starts_with("The MCP server `probe` failed during the call"), "{crashed}");
    assert!(crashed.contains("probe: out of memory") && results[2].1, "{crashed}");
    // Started again after the crash, confined: no network, nothing written outside.
    let probed = results[3].0;
    assert!(probed.starts_with("network: ") && !probed.contains("reached"), "{probed}");
    assert!(probed.contains("write: Read-only file system"), "{probed}");
    assert!(!outside.exists());
    assert_eq!(events.last().unwrap()["type"], "answer");

    // Each result is in the conversation the next request carries.
    let sessions = env.home.join(".local/share/tiller/sessions");
    let log = std::fs::read_dir(&sessions).unwrap().next().unwrap().unwrap().path();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tool_results = lines.iter().filter(|l| l["message"]["role"] == "tool").count();
    assert_eq!(tool_results, 4);

    let mcp = ledger_mcp(&env);
    let seen: Vec<(&str, &str, &str)> = mcp
        .iter()
        .map(|m| {
            let outcome = m["outcome"].as_str().unwrap();
            (m["server"].as_str().unwrap(), m["tool"].as_str().unwrap(), &outcome[..2])
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("everything", "echo", "ok"),
            ("time", "get_current_time", "ok"),
            ("probe", "crash", "er"),
            ("probe", "probe", "ok")
        ]
    );
    let arguments = r#"{"message":"hello from tiller"}"#;
    assert_eq!(mcp[0]["arguments_sha256"], tiller_ledger::sha256_hex(arguments.as_bytes()));
    assert_eq!(mcp[0]["bytes"], "Echo: hello from tiller".len());

    let out = env.tiller(&["mcp", "remove", "probe"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = std::fs::read_to_string(env.config()).unwrap();
    assert!(config.contains("[mcp.servers.time]") && !config.contains("probe"), "{config}");
}

/// The `mcp` objects of the ledger's `tool_action` rows, in order.
fn ledger_mcp(env: &Env) -> Vec<serde_json::Value> {
    let db = env.home.join(".local/share/tiller/ledger.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.prepare("SELECT payload FROM entries WHERE kind = 'tool_action' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str::<serde_json::Value>(&p.unwrap()).unwrap()["mcp"].clone())
        .collect()
}

#[test]
fn exec_calls_the_tools_of_a_streamable_http_server_and_egress_refuses_one_off_the_machine() {
    let Some(peer) = peers::HttpPeer::everything() else {
        return;
    };
    let env = Env::new();
    for (name, url) in [("everything", peer.url.as_str()), ("remote", "http://192.0.2.1:8080/mcp")]
    {
        let out = env.tiller(&["mcp", "add", name, "--url", url]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = env.tiller(&["mcp", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.contains("everything  http  running\n  everything__echo  "), "{listed}");
    let refused = "MCP server `remote` did not start: 192.0.2.1 is not on the egress allow-list";
    assert!(listed.contains(&format!("remote  http  failed: {refused}")), "{listed}");

    let call = |name: &str, arguments: serde_json::Value| serde_json::json!({ "tool_calls": [ { "name": name, "arguments": arguments } ] });
    let script = serde_json::json!({ "model": "s", "turns": [
        call("everything__echo", serde_json::json!({"message": "over http"})),
        call("everything__get-sum", serde_json::json!({"a": 2, "b": 3})),
        { "text": "done" }
    ]});
    std::fs::write(env.repo.join("s.json"), script.to_string()).unwrap();
    let out = env.tiller(&["exec", "--json", "--provider", "scripted", "-m", "s.json", "go"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "warning")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(warnings.len() == 1 && warnings[0].starts_with(refused), "{warnings:?}");
    let results: Vec<(&str, bool)> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .map(|e| (e["output"].as_str().unwrap(), e["is_error"].as_bool().unwrap()))
        .collect();
    assert_eq!(results[0], ("Echo: over http", false));
    assert!(results[1].0.contains("is 5") && !results[1].1, "{}", results[1].0);
    assert_eq!(events.last().unwrap()["type"], "answer");

    // Each result is in the conversation the next request carries.
    let sessions = env.home.join(".local/share/tiller/sessions");
    let log = std::fs::read_dir(&sessions).unwrap().next().unwrap().unwrap().path();
    let log = std::fs::read_to_string(log).unwrap();
    let tool_messages: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["message"]["role"] == "tool")
        .collect();
    assert_eq!(tool_messages.len(), 2);
    assert!(tool_messages[0].to_string().contains("Echo: over http"), "{}", tool_messages[0]);

    let mcp = ledger_mcp(&env);
    let seen: Vec<(&str, &str, &str)> = mcp
        .iter()
        .map(|m| {
            (
                m["server"].as_str().unwrap(),
                m["tool"].as_str().unwrap(),
                m["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("everything", "echo", "ok"), ("everything", "get-sum", "ok")]);
    let arguments = r#"{"message":"over http"}"#;
    assert_eq!(mcp[0]["arguments_sha256"], tiller_ledger::sha256_hex(arguments.as_bytes()));
    assert_eq!(mcp[0]["bytes"], "Echo: over http".len());
}

//! The MCP servers scripts/test installs under target/peers, for the tests of several crates
//! (included with `#[path]`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The installed peer at `path` under target/peers; `None` (or a failure under
/// `TILLER_EXPECT_MCP`, as scripts/test sets it) where it is missing.
pub fn mcp_peer(path: &str) -> Option<PathBuf> {
    let found = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers").join(path);
    if found.exists() {
        return Some(found);
    }
    assert!(
        std::env::var_os("TILLER_EXPECT_MCP").is_none(),
        "{} is missing: scripts/test installs it",
        found.display()
    );
    eprintln!("skipped: {} is missing (scripts/test installs it)", found.display());
    None
}

/// server-everything serving streamable HTTP on a free loopback port; stopped when dropped.
pub struct HttpPeer {
    child: Child,
    /// Where it answers: `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl HttpPeer {
    /// Started and listening; `None` where it is not installed (as [`mcp_peer`]).
    pub fn everything() -> Option<HttpPeer> {
        let program = mcp_peer("npm/node_modules/.bin/mcp-server-everything")?;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(program)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let peer = HttpPeer { child, url: format!("http://127.0.0.1:{port}/mcp") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server-everything is not listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(peer)
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

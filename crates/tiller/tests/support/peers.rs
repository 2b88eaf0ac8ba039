//! The MCP servers scripts/test installs under target/peers, for the tests of several crates
//! (included with `#[path]`).

use std::path::{Path, PathBuf};

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

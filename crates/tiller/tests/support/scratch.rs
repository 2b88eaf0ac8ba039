//! Scratch folders for tests whose commands run in tier A, where `/tmp` is the sandbox's own:
//! a write outside the workspace must meet a real folder (included with `#[path]`).

use std::path::PathBuf;

/// A fresh folder outside `/tmp`: in `TILLER_TEST_TMPDIR` (so that `scripts/test` can run the
/// tests as an unprivileged user), else cargo's temporary folder, or `/var/tmp` where that lies
/// under `/tmp` too.
pub fn outside_tmp() -> tempfile::TempDir {
    let cargo_tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let fallback = if cargo_tmp.starts_with("/tmp") {
        PathBuf::from("/var/tmp/tiller-tests")
    } else {
        cargo_tmp
    };
    let parent = std::env::var_os("TILLER_TEST_TMPDIR").map_or(fallback, PathBuf::from);
    std::fs::create_dir_all(&parent).unwrap();
    tempfile::tempdir_in(parent).unwrap()
}

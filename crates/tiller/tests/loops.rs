//! The loop commands as a user runs them: a scripted model on a copy of the Python fixture of
//! `tiller-loops`, in a temporary git repository, with the project's tests run in the sandbox.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

struct Env {
    dir: tempfile::TempDir,
    repo: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tiller-loops/tests/fixtures/python");
    std::fs::create_dir_all(repo.join("shop")).unwrap();
    for file in [".gitignore", "bench.py", "test_cart.py", "shop/__init__.py", "shop/cart.py"] {
        std::fs::copy(fixture.join(file), repo.join(file)).unwrap();
    }
    let env = Env { dir, repo };
    env.git(&["init", "-q"]);
    env.git(&["add", "."]);
    env.git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "Fixture"]);
    env
}

impl Env {
    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(&self.repo).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Writes a script whose one try writes `path` with `content`, and returns its path.
    fn script(&self, name: &str, path: &str, content: &str) -> String {
        let turns = json!({ "turns": [
            { "tool_calls": [{ "name": "write_file", "arguments": { "path": path, "content": content } }] },
            { "text": "Done." }
        ] });
        let file = self.dir.path().join(name);
        std::fs::write(&file, turns.to_string()).unwrap();
        file.display().to_string()
    }

    fn tiller(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tiller"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.dir.path().join("home"))
            .current_dir(&self.repo)
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const TEST: &str = "import unittest\n\nfrom shop.cart import total\n\n\nclass DiscountTest(unittest.TestCase):\n    def test_discount(self):\n        self.assertAlmostEqual(total([10, 10], 0.5), {})\n";

#[test]
fn project_shows_the_discovered_commands_and_saves_them() {
    let env = env();
    let out = env.tiller(&["project", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["test"], json!({ "command": "python3 -m unittest -v", "from": "test_*.py" }));
    assert_eq!(shown["test_one"]["command"], "python3 -m unittest -v {name}");
    assert!(shown.get("bench").is_none());
    std::fs::create_dir(env.repo.join(".tiller")).unwrap();
    std::fs::write(env.repo.join(".tiller/project.toml"), "bench = \"python3 bench.py\"\n")
        .unwrap();
    let out = env.tiller(&["project", "--save"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("bench     python3 bench.py  (.tiller/project.toml)"), "{stdout}");
    assert!(stdout.contains("test      python3 -m unittest -v  (test_*.py)"), "{stdout}");
    let saved = std::fs::read_to_string(env.repo.join(".tiller/project.toml")).unwrap();
    assert!(
        saved.contains("test = \"python3 -m unittest -v\"") && saved.contains("bench = "),
        "{saved}"
    );
}

#[test]
fn repro_then_fix_commit_a_test_and_a_fix() {
    let env = env();
    let script = env.script("repro.json", "test_discount.py", &TEST.replace("{}", "10"));
    let out = env.tiller(&[
        "repro",
        "--yes",
        "--provider",
        "scripted",
        "--model",
        &script,
        "total ignores the discount",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with(
            "accepted: test_discount.DiscountTest.test_discount (test_discount.py) committed as "
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("tiller repro baseline: ran")
            && stderr.contains("tiller repro attempt: accepted"),
        "{stderr}"
    );
    assert_eq!(
        env.git(&["log", "-1", "--format=%s"]).trim(),
        "Add failing test for total ignores the discount"
    );

    let cart = std::fs::read_to_string(env.repo.join("shop/cart.py")).unwrap();
    let fixed = cart.replace("sum(prices) - discount", "sum(prices) * (1 - discount)");
    let script = env.script("fix.json", "shop/cart.py", &fixed);
    let out = env.tiller(&["fix", "--yes", "--provider", "scripted", "--model", &script]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with(
            "fixed: test_discount.DiscountTest.test_discount passes and the suite is green"
        ),
        "{stdout}"
    );
    let log = env.git(&["log", "--format=%s", "-2", "--name-only"]);
    assert!(
        log.starts_with(
            "Fix the bug that test_discount.DiscountTest.test_discount reproduces\n\nshop/cart.py\n"
        ),
        "{log}"
    );
    assert_eq!(env.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_rejected_repro_exits_1_with_a_hint_and_leaves_the_tree_clean() {
    let env = env();
    let script = env.script("repro.json", "test_discount.py", &TEST.replace("{}", "19.5"));
    let out = env.tiller(&[
        "repro",
        "--yes",
        "--attempts",
        "1",
        "--provider",
        "scripted",
        "--model",
        &script,
        "total ignores the discount",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: tiller rejected the test: the new test test_discount.DiscountTest.test_discount passes, so it does not show the bug\nhint: "), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert_eq!(env.git(&["log", "--format=%s"]).trim(), "Fixture");
}

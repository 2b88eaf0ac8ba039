//! Each loop end to end: a scripted model on a copy of a fixture project (a Rust crate and a
//! Python package with planted bugs) in a temporary git repository, checked by running the
//! project's real tests.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tiller_agent::{AcceptAll, Agent, AgentConfig};
use tiller_ledger::Ledger;
use tiller_loops::{
    Conclusion, Loop, PerfOptions, ProjectCommands, SweepOptions, Verifier, fix, perf, repro, sweep,
};
use tiller_model::{Request, Scripted};
use tiller_tools::git::{commit, git};
use tiller_tools::{Registry, Workspace};
use tiller_types::ApprovalPolicy;

/// A fixture copied into a fresh repository with one commit, and a ledger beside it.
struct Repo {
    dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Repo {
    fn new(fixture: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
        let root = dir.path().join("repo");
        copy(&from, &root);
        let repo = Repo { dir, root };
        git(repo.root(), &["init", "-q"]).unwrap();
        git(repo.root(), &["add", "."]).unwrap();
        commit(repo.root(), &[".".into()], "Fixture", &[]).unwrap();
        repo
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn ledger(&self) -> Ledger {
        Ledger::open(self.dir.path().join("ledger.sqlite")).unwrap()
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.root().join(path), text).unwrap();
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root().join(path)).unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        git(self.root(), args).unwrap()
    }

    /// The `loop` notes recorded, as JSON.
    fn notes(&self) -> Vec<Value> {
        let conn = rusqlite::Connection::open(self.dir.path().join("ledger.sqlite")).unwrap();
        let mut stmt =
            conn.prepare("SELECT payload FROM entries WHERE kind = 'note' ORDER BY id").unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(0)).unwrap();
        rows.map(|r| serde_json::from_str::<Value>(&r.unwrap()).unwrap())
            .filter(|n| n["topic"] == "loop")
            .map(|n| n["data"].clone())
            .collect()
    }

    /// `(step, verdict)` of each note of `command`.
    fn verdicts(&self, command: &str) -> Vec<(String, String)> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (self.notes().iter())
            .filter(|n| n["command"] == command)
            .map(|n| (s(&n["step"]), s(&n["verdict"])))
            .collect()
    }

    fn reasons(&self, command: &str) -> Vec<String> {
        let notes = self.notes();
        let with = notes.iter().filter(|n| n["command"] == command && n["reason"].is_string());
        with.map(|n| n["reason"].as_str().unwrap().to_string()).collect()
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An agent on `repo` replaying `turns`, with edits reviewed; and the requests it sends.
fn agent(repo: &Repo, turns: Value) -> (Agent, Arc<Mutex<Vec<Request>>>) {
    let script =
        serde_json::from_value(json!({ "model": "scripted-test", "turns": turns })).unwrap();
    let provider = Scripted::new("test-script".into(), script);
    let requests = provider.requests();
    let config = AgentConfig { approval: ApprovalPolicy::OnRequest, ..AgentConfig::default() };
    let ws = Workspace::new(repo.root()).unwrap();
    (Agent::new(Box::new(provider), Registry::default(), ws, config), requests)
}

/// Runs `body` on a loop over `agent`, recording to the repo's ledger, unconfined.
fn with_loop<T>(
    repo: &Repo,
    agent: &mut Agent,
    attempts: u32,
    body: impl FnOnce(&mut Loop) -> T,
) -> T {
    let (commands, _) = ProjectCommands::load(repo.root()).unwrap();
    let verifier = Verifier::new(repo.root(), commands, None);
    let mut approver = AcceptAll;
    let mut lp = Loop::new(agent, &mut approver, verifier);
    lp.ledger = Some(repo.ledger());
    lp.session = "s1".into();
    lp.attempts = attempts;
    body(&mut lp)
}

/// Two turns: one tool call, then an answer.
fn call(name: &str, arguments: Value) -> [Value; 2] {
    [
        json!({ "tool_calls": [{ "name": name, "arguments": arguments }] }),
        json!({ "text": "Done." }),
    ]
}

fn write(path: &str, content: &str) -> [Value; 2] {
    call("write_file", json!({ "path": path, "content": content }))
}

fn turns(parts: &[[Value; 2]]) -> Value {
    Value::Array(parts.iter().flatten().cloned().collect())
}

const RUST_TEST: &str =
    "use tally::sum_to;\n\n#[test]\nfn sums_through_n() {\n    assert_eq!(sum_to(3), 6);\n}\n";
const RUST_BUGGY: &str = "(1..n).sum()";

#[test]
fn repro_rejects_passing_and_uncompilable_tests_and_commits_a_failing_one() {
    let repo = Repo::new("rust");
    let head = repo.git(&["rev-parse", "HEAD"]);
    let (mut agent, requests) = agent(
        &repo,
        turns(&[
            write("tests/repro.rs", &RUST_TEST.replace("sum_to(3), 6", "sum_to(0), 0")),
            write("tests/repro.rs", &RUST_TEST.replace("6)", "\"6\")")),
            write("tests/repro.rs", RUST_TEST),
        ]),
    );
    let outcome = with_loop(&repo, &mut agent, 3, |lp| repro(lp, "sum_to(3) is 3, not 6").unwrap());
    let Conclusion::Accepted(r) = outcome else { panic!("{outcome:?}") };
    assert_eq!(r.tests, ["sums_through_n"]);
    assert_eq!(r.files, ["tests/repro.rs"]);
    assert_eq!(
        repo.verdicts("repro"),
        [
            ("baseline", "ran"),
            ("attempt", "rejected"),
            ("attempt", "rejected"),
            ("attempt", "accepted")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let reasons = repo.reasons("repro");
    assert!(reasons[0].contains("sums_through_n passes"), "{reasons:?}");
    assert_eq!(reasons[1], "the tests do not compile");
    // The model was told why, with the compiler's words.
    let last = requests
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .messages
        .iter()
        .map(|m| m.text())
        .collect::<String>();
    assert!(
        last.contains("tiller rejected the test: the tests do not compile")
            && last.contains("error[E0308]"),
        "{last}"
    );
    // The test alone, committed on top of the fixture.
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]), head);
    assert_eq!(
        repo.git(&["show", "--name-only", "--format=%s", "HEAD"]).trim(),
        "Add failing test for sum_to(3) is 3, not 6\n\ntests/repro.rs"
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%(trailers:key=Tiller-Test,valueonly)"]).trim(),
        "sums_through_n"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert!(repo.read("src/lib.rs").contains(RUST_BUGGY));
}

#[test]
fn fix_refuses_test_edits_and_commits_only_a_green_suite() {
    let repo = Repo::new("rust");
    repo.write("tests/repro.rs", RUST_TEST);
    commit(
        repo.root(),
        &["tests/repro.rs".into()],
        "Add failing test",
        &[("Tiller-Test", "sums_through_n".into())],
    )
    .unwrap();
    let lib = repo.read("src/lib.rs");
    let (mut agent, requests) = agent(
        &repo,
        turns(&[
            // Both are refused in review: the edit before it is written, the shell's once it ran
            // (and undone), so the attempt changed nothing.
            [
                json!({ "tool_calls": [
                    { "name": "write_file", "arguments": { "path": "tests/repro.rs", "content": RUST_TEST.replace('6', "3") } },
                    { "name": "shell", "arguments": { "command": "sed -i s/6/3/ tests/repro.rs" } }
                ] }),
                json!({ "text": "The test expected the wrong value." }),
            ],
            write("src/lib.rs", &lib.replace(RUST_BUGGY, "(0..n).sum()")),
            write("src/lib.rs", &lib.replace(RUST_BUGGY, "(1..=n).sum()")),
        ]),
    );
    let outcome = with_loop(&repo, &mut agent, 3, |lp| fix(lp, None).unwrap());
    let Conclusion::Accepted(fixed) = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        (fixed.test.as_str(), fixed.files.as_slice()),
        ("sums_through_n", &["src/lib.rs".to_string()][..])
    );
    let reasons = repo.reasons("fix");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "nothing changed", "{reasons:?}");
    assert_eq!(reasons[1], "sums_through_n still fails");
    let sent = format!("{:?}", requests.lock().unwrap()[1].messages);
    let refusals = sent.matches("tiller refused the change to tests/repro.rs").count();
    assert_eq!(refusals, 2, "{sent}");
    // One commit, of the code only; the test is as committed, and the suite is green.
    assert_eq!(
        repo.git(&["show", "--name-only", "--format=%s", "HEAD"]).trim(),
        "Fix the bug that sums_through_n reproduces\n\nsrc/lib.rs"
    );
    assert_eq!(repo.git(&["log", "--format=%s", "HEAD~1", "-1"]).trim(), "Add failing test");
    assert_eq!(repo.read("tests/repro.rs"), RUST_TEST);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let (commands, _) = ProjectCommands::load(repo.root()).unwrap();
    assert!(Verifier::new(repo.root(), commands, None).suite().unwrap().green());
}

const PY_TEST: &str = "import unittest\n\nfrom shop.cart import total\n\n\nclass DiscountTest(unittest.TestCase):\n    def test_discount(self):\n        self.assertAlmostEqual(total([10, 10], 0.5), 10)\n";
const PY_LARGEST: &str = "import unittest\n\nfrom shop.cart import largest\n\n\nclass LargestTest(unittest.TestCase):\n    def test_largest(self):\n        self.assertEqual(largest([1, 5, 2]), 5)\n";

#[test]
fn fix_that_runs_out_of_attempts_commits_nothing() {
    let repo = Repo::new("python");
    repo.write("test_discount.py", PY_TEST);
    commit(
        repo.root(),
        &["test_discount.py".into()],
        "Add failing test",
        &[("Tiller-Test", "test_discount.DiscountTest.test_discount".into())],
    )
    .unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let cart = repo.read("shop/cart.py");
    let wrong = cart.replace("sum(prices) - discount", "sum(prices) - 10 * discount");
    let (mut agent, _) = agent(&repo, turns(&[write("shop/cart.py", &wrong)]));
    let outcome = with_loop(&repo, &mut agent, 1, |lp| fix(lp, None).unwrap());
    assert_eq!(
        outcome,
        Conclusion::Rejected("test_discount.DiscountTest.test_discount still fails".into())
    );
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.read("shop/cart.py"), cart);
}

#[test]
fn sweep_commits_a_test_and_a_fix_per_bug_until_the_model_finds_none() {
    let repo = Repo::new("python");
    let cart = repo.read("shop/cart.py");
    let one = cart.replace("sum(prices) - discount", "sum(prices) * (1 - discount)");
    let two = one.replace("sorted(prices)[0]", "max(prices)");
    let answer = |text: &str| json!({ "text": text });
    let mut script = vec![answer(
        "total treats the discount as an amount: total([10, 10], 0.5) is 19.5, not 10",
    )];
    script.extend(write("test_discount.py", PY_TEST));
    script.extend(write("shop/cart.py", &one));
    script.push(answer("largest returns the smallest price"));
    script.extend(write("test_largest.py", PY_LARGEST));
    script.extend(write("shop/cart.py", &two));
    script.push(answer("NONE"));
    let (mut agent, _) = agent(&repo, Value::Array(script));
    let options = SweepOptions { max: 5, paths: vec!["shop".into()], budget_tokens: None };
    let done = with_loop(&repo, &mut agent, 1, |lp| sweep(lp, &options).unwrap());
    assert_eq!(done.stopped, "the model found no more bugs");
    assert!(!done.rejected);
    let tests: Vec<&str> = done.pairs.iter().map(|p| p.test.as_str()).collect();
    assert_eq!(
        tests,
        ["test_discount.DiscountTest.test_discount", "test_largest.LargestTest.test_largest"]
    );
    let log = repo.git(&["log", "--format=>%s", "--name-only", "-4"]);
    let commits: Vec<String> =
        log.split('>').skip(1).map(|c| c.trim().replace("\n\n", "\n")).collect();
    assert_eq!(
        commits,
        [
            "Fix the bug that test_largest.LargestTest.test_largest reproduces\nshop/cart.py",
            "Add failing test for largest returns the smallest price\ntest_largest.py",
            "Fix the bug that test_discount.DiscountTest.test_discount reproduces\nshop/cart.py",
            "Add failing test for total treats the discount as an amount: total([10, 10], 0.5)…\ntest_discount.py",
        ]
    );
    assert_eq!(repo.verdicts("sweep").last().unwrap(), &("end".to_string(), "done".to_string()));
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

/// Held while timing, so that the perf tests do not measure each other.
static TIMING: Mutex<()> = Mutex::new(());

/// The perf loop on the Python fixture's `unique`, with the change `cart` → `changed`.
fn perf_on(changed: impl Fn(&str) -> String) -> (Repo, Conclusion<tiller_loops::Sped>) {
    let cart = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python/shop/cart.py"),
    )
    .unwrap();
    perf_with(turns(&[write("shop/cart.py", &changed(&cart))]))
}

/// The perf loop on the Python fixture, the model's turns scripted.
fn perf_with(turns: Value) -> (Repo, Conclusion<tiller_loops::Sped>) {
    let _timing = TIMING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let repo = Repo::new("python");
    let (mut agent, _) = agent(&repo, turns);
    let options = PerfOptions { bench: "python3 bench.py".into(), runs: 8, profile: false };
    let outcome = with_loop(&repo, &mut agent, 1, |lp| perf(lp, &options).unwrap());
    (repo, outcome)
}

#[test]
fn perf_keeps_a_real_speed_up() {
    let (repo, outcome) = perf_on(|cart| {
        cart.replace("    seen = []\n", "    seen, known = [], set()\n")
            .replace("if item not in seen:", "if item not in known:\n            known.add(item)")
    });
    let Conclusion::Accepted(sped) = outcome else { panic!("{outcome:?}") };
    assert!(sped.measurement.faster() && sped.confirmation.faster());
    assert!(sped.confirmation.test.shift < 0.0 && sped.confirmation.test.shift_ci.1 < 0.0);
    assert_eq!(sped.measurement.baseline.len(), 8);
    let summary = sped.confirmation.summary();
    assert!(summary.starts_with("time: ") && summary.ends_with("n=8+8"), "{summary}");
    assert_eq!(
        repo.git(&["show", "--name-only", "--format=%s", "HEAD"]).trim(),
        "Speed up `python3 bench.py`\n\nshop/cart.py"
    );
    let steps: Vec<String> =
        repo.verdicts("perf").into_iter().map(|(s, v)| format!("{s} {v}")).collect();
    assert_eq!(steps, ["baseline measured", "measure faster", "confirm faster", "attempt kept"]);
    let measured = &repo.notes()[1];
    assert_eq!(measured["baseline_s"].as_array().unwrap().len(), 8);
    assert!(measured["p"].as_f64().unwrap() < 0.05);
    // The baseline checkout is gone.
    assert_eq!(repo.git(&["worktree", "list"]).lines().count(), 1);
}

#[test]
fn perf_keeps_nothing_that_edits_the_benchmark_or_the_tests() {
    let (repo, outcome) = perf_with(turns(&[[
        json!({ "tool_calls": [
            { "name": "write_file", "arguments": { "path": "bench.py", "content": "pass\n" } },
            { "name": "shell", "arguments": { "command": "echo 'pass' > bench.py; echo '# fast' >> test_cart.py" } }
        ] }),
        json!({ "text": "The benchmark is much faster now." }),
    ]]));
    // The edit tool is refused in review, and so is what the command changed, which is undone:
    // the attempt changes nothing.
    let Conclusion::Rejected(why) = outcome else { panic!("{outcome:?}") };
    assert_eq!(why, "nothing changed");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python");
    for file in ["bench.py", "test_cart.py"] {
        assert_eq!(repo.read(file), std::fs::read_to_string(fixture.join(file)).unwrap());
    }
    assert_eq!(repo.git(&["log", "--format=%s"]).trim(), "Fixture");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn perf_reverts_a_change_that_is_not_faster() {
    let (repo, outcome) = perf_on(|cart| {
        cart.replace(
            "\"\"\"Cart arithmetic.\"\"\"",
            "\"\"\"Cart arithmetic, in plain Python.\"\"\"",
        )
    });
    let Conclusion::Rejected(why) = outcome else { panic!("{outcome:?}") };
    assert!(
        why.starts_with("not significantly faster (time: ")
            || why.starts_with("faster in one measurement but not in the next"),
        "{why}"
    );
    assert_eq!(repo.git(&["log", "--format=%s"]).trim(), "Fixture");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(
        repo.verdicts("perf").last().unwrap(),
        &("attempt".to_string(), "reverted".to_string())
    );
}

/// A candidate whose tests hang is stopped: in a copy of the workspace at a limit set by how long
/// the tests took in the workspace, and at once when the run is cancelled.
#[test]
fn a_candidate_check_that_hangs_is_stopped() {
    use tiller_agent::Checker;
    let (root, copy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(root.path().join("test.py"), "assert False\n").unwrap();
    std::fs::write(copy.path().join("test.py"), "while True:\n    pass\n").unwrap();
    let commands = ProjectCommands { test: "python3 test.py".into(), ..Default::default() };
    let mut verifier = Verifier::new(root.path(), commands, None);
    // More than the floor on a candidate's run, so that only a cancel can stop it sooner.
    verifier.timeout = std::time::Duration::from_secs(60);
    let cancel = tiller_types::Cancel::default();
    assert!(!verifier.check(root.path(), &[], &cancel).unwrap().green());

    let started = std::time::Instant::now();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            cancel.cancel();
        });
        verifier.check(copy.path(), &[], &cancel).unwrap()
    });
    assert!(started.elapsed().as_secs() < 5, "stopped by the cancel: {:?}", started.elapsed());
    assert_eq!(result.build_error.as_deref(), Some("`python3 test.py` was stopped"));

    let started = std::time::Instant::now();
    let result = verifier.check(copy.path(), &[], &tiller_types::Cancel::default()).unwrap();
    let waited = started.elapsed().as_secs();
    assert!((10..50).contains(&waited), "stopped at the floor of 10 s: {waited} s");
    assert!(result.build_error.unwrap().contains("ran past 10s"));
}

//! Reading a test run's output: which tests passed, which failed and why. Knows `cargo test`,
//! `python -m unittest -v`, pytest's `-rA` summary and `go test -v`; for anything else only
//! the exit status counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

/// Why a test failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// An assertion or a panic in the test: the behaviour it checks is wrong.
    Assertion,
    /// The test did not compile or import.
    Compile,
    /// A file it needed is missing.
    Missing,
    /// Any other error.
    Other,
}

/// One run of a test command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SuiteResult {
    pub passed: BTreeSet<String>,
    pub failed: BTreeMap<String, Failure>,
    /// The build failed before any test ran: the first compiler errors.
    pub build_error: Option<String>,
    /// The command exited with status 0.
    pub success: bool,
    /// What the command printed.
    pub output: String,
}

impl SuiteResult {
    /// Everything passed and the command says so.
    pub fn green(&self) -> bool {
        self.success && self.failed.is_empty() && self.build_error.is_none()
    }

    /// Every test the run reported.
    pub fn tests(&self) -> BTreeSet<&str> {
        self.passed.iter().chain(self.failed.keys()).map(String::as_str).collect()
    }

    /// `Ok` for a pass, the failure for a failure, `None` when the run did not report `name`.
    pub fn outcome(&self, name: &str) -> Option<Result<(), Failure>> {
        match self.failed.get(name) {
            Some(failure) => Some(Err(*failure)),
            None => self.passed.contains(name).then_some(Ok(())),
        }
    }

    /// The end of the output, where test runners put their verdicts, for the model to read.
    pub fn excerpt(&self, bytes: usize) -> String {
        let text = self.build_error.as_deref().unwrap_or(&self.output).trim_end();
        let mut start = text.len().saturating_sub(bytes);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }
}

static CARGO_SECTION: LazyLock<Regex> = LazyLock::new(|| regex(r"^---- (.+) stdout ----$"));
static UNITTEST_LINE: LazyLock<Regex> = LazyLock::new(|| regex(r"^(\w+) \(([\w.]+)\)(.*)$"));
static UNITTEST_SECTION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)"));
static PY_EXCEPTION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?:\w+\.)*\w+(?:Error|Exception)\b"));
static PYTEST_LINE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(PASSED|FAILED|ERROR) ([^\s(]\S*)(?: - (.*))?$"));
static GO_LINE: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*--- (PASS|FAIL): (\S+)"));

fn regex(pattern: &str) -> Regex {
    // The patterns are constants, checked by the tests below.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("valid pattern")
}

/// Parses what a test command printed; `success` is whether it exited with status 0.
pub fn parse_output(output: &str, success: bool) -> SuiteResult {
    let mut r = SuiteResult { success, output: output.to_string(), ..Default::default() };
    let lines: Vec<&str> = output.lines().collect();
    let mut pending = None;
    for (i, line) in lines.iter().enumerate() {
        if let Some((name, status)) = line.strip_prefix("test ").and_then(|l| l.split_once(" ... "))
        {
            record(&mut r, name, status == "ok", status.starts_with("FAILED"), Failure::Assertion);
        } else if let Some(c) = UNITTEST_LINE.captures(line) {
            let id = unittest_id(&c[1], &c[2]);
            match c[3].split_once(" ... ") {
                Some((_, status)) => unittest_status(&mut r, &id, status),
                None => pending = Some(id),
            }
        } else if let (Some(id), Some((_, status))) = (&pending, line.split_once(" ... ")) {
            // A docstring line stands between the test's name and its status.
            unittest_status(&mut r, &id.clone(), status);
            pending = None;
        } else if let Some(c) = PYTEST_LINE.captures(line) {
            let reason = c.get(3).map_or("", |m| m.as_str());
            let failure = if c[1] == *"ERROR" && !c[2].contains("::") {
                Failure::Compile
            } else {
                classify(reason)
            };
            record(&mut r, &c[2], &c[1] == "PASSED", &c[1] != "PASSED", failure);
        } else if let Some(c) = GO_LINE.captures(line) {
            record(&mut r, &c[2], &c[1] == "PASS", &c[1] == "FAIL", Failure::Assertion);
        } else if let Some(c) = CARGO_SECTION.captures(line) {
            let body = section(&lines[i + 1..], |l| l.starts_with("---- ") || *l == "failures:");
            r.failed.insert(c[1].to_string(), classify(&body));
        } else if let Some(c) = UNITTEST_SECTION.captures(line) {
            let body =
                section(&lines[i + 2..], |l| l.starts_with("=====") || l.starts_with("-----"));
            let last = body.lines().rev().find(|l| PY_EXCEPTION.is_match(l)).unwrap_or(&body);
            r.failed.insert(unittest_id(&c[1], &c[2]), classify(last));
        }
        let build = line.starts_with("error[E")
            || line.contains("error: could not compile")
            || line.contains("[build failed]")
            || line.contains("[setup failed]");
        if build && r.build_error.is_none() {
            r.build_error =
                Some(lines[i..].iter().take(40).copied().collect::<Vec<_>>().join("\n"));
        }
    }
    r
}

fn record(r: &mut SuiteResult, name: &str, pass: bool, fail: bool, failure: Failure) {
    if pass {
        r.passed.insert(name.to_string());
    } else if fail {
        // A later section may say more precisely why.
        r.failed.entry(name.to_string()).or_insert(failure);
    }
}

/// `module.Class.test`, whether Python printed the test's id (3.11) or only its class.
/// A module that failed to import is reported as a test of unittest's loader, named after the
/// module: its id is the module's, which runs it again.
fn unittest_id(name: &str, id: &str) -> String {
    if id.starts_with("unittest.loader._FailedTest") {
        name.to_string()
    } else if id.ends_with(&format!(".{name}")) {
        id.to_string()
    } else {
        format!("{id}.{name}")
    }
}

fn unittest_status(r: &mut SuiteResult, id: &str, status: &str) {
    let fail =
        status.starts_with("FAIL") || status.starts_with("ERROR") || status == "unexpected success";
    record(r, id, status == "ok", fail, Failure::Other);
}

/// The lines up to the first that `end` accepts.
fn section(lines: &[&str], end: impl Fn(&&str) -> bool) -> String {
    lines.iter().take_while(|l| !end(l)).copied().collect::<Vec<_>>().join("\n")
}

/// Why a test failed, from its failure text.
fn classify(text: &str) -> Failure {
    let any = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if any(&["SyntaxError", "IndentationError", "ImportError", "ModuleNotFoundError", "error[E"]) {
        Failure::Compile
    } else if any(&["FileNotFoundError", "No such file or directory", "kind: NotFound"]) {
        Failure::Missing
    } else if any(&["AssertionError", "panicked at"]) || text.starts_with("assert") {
        Failure::Assertion
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, success: bool) -> SuiteResult {
        let path = format!("{}/tests/fixtures/samples/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_output(&std::fs::read_to_string(path).unwrap(), success)
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn cargo_test_failures_are_classified_from_their_sections() {
        let r = sample("cargo-fail.txt", false);
        assert_eq!(names(&r.passed), ["counts_evens"]);
        assert_eq!(r.failed["sums_through_n"], Failure::Assertion);
        assert_eq!(r.failed["reads_missing"], Failure::Missing);
        assert_eq!(r.failed.len(), 2);
        assert_eq!(r.build_error, None);
        assert!(!r.green());
        assert!(r.excerpt(200).contains("error: test failed"), "{}", r.excerpt(200));
    }

    #[test]
    fn a_compile_error_is_a_build_error() {
        let r = sample("cargo-compile.txt", false);
        assert!(r.tests().is_empty());
        let error = r.build_error.as_deref().unwrap();
        assert!(error.starts_with("error[E0308]: mismatched types"), "{error}");
        assert!(r.excerpt(100).contains("could not compile"));
    }

    #[test]
    fn unittest_failures_errors_and_import_errors() {
        let r = sample("unittest-fail.txt", false);
        assert_eq!(
            names(&r.passed),
            [
                "test_cart.CartTest.test_total_without_discount",
                "test_cart.CartTest.test_unique_keeps_order"
            ]
        );
        assert_eq!(r.failed["test_repro.ReproTest.test_discount"], Failure::Assertion);
        assert_eq!(r.failed["test_repro.ReproTest.test_missing"], Failure::Missing);
        assert_eq!(r.failed["test_repro.ReproTest.test_error"], Failure::Other);
        // Not a pytest line: "FAILED (failures=1, errors=2)".
        assert_eq!(r.failed.len(), 3);
        let r = sample("unittest-import.txt", false);
        // Named by their modules, which is what runs them again.
        assert_eq!(r.failed["test_repro"], Failure::Compile);
        assert_eq!(r.failed["test_syntax"], Failure::Compile);
        assert_eq!(r.passed.len(), 2);
    }

    #[test]
    fn pytest_summary_lines() {
        let r = sample("pytest-fail.txt", false);
        assert_eq!(r.passed.len(), 3);
        assert!(r.passed.contains("test_repro.py::test_plain"));
        assert_eq!(r.failed["test_repro.py::ReproTest::test_discount"], Failure::Assertion);
        assert_eq!(r.failed["test_repro.py::ReproTest::test_missing"], Failure::Missing);
        let r = sample("pytest-collect.txt", false);
        assert_eq!(r.failed["test_bad.py"], Failure::Compile);
        assert!(r.passed.is_empty());
    }

    #[test]
    fn go_and_unknown_runners() {
        let out = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    b_test.go:9: got 1\n--- FAIL: TestB (0.00s)\nFAIL\n";
        let r = parse_output(out, false);
        assert_eq!(names(&r.passed), ["TestA"]);
        assert_eq!(r.failed["TestB"], Failure::Assertion);
        assert!(
            parse_output("# pkg\n./a.go:3: undefined: x\nFAIL pkg [build failed]\n", false)
                .build_error
                .is_some()
        );
        assert!(parse_output("all good\n", true).green());
        assert!(!parse_output("all good\n", false).green());
    }
}

//! `repro`: the agent writes a test for a described bug. tiller keeps it only if the test is
//! new, fails at an assertion (not at compiling, importing or a missing file), and every other
//! test keeps the outcome it had before; then commits the test files alone.

use serde_json::json;
use tiller_tools::git::{SESSION_TRAILER, commit};
use tiller_tools::is_test_path;
use tiller_types::text::clip;

use crate::git::{TEST_TRAILER, changed_paths, require_clean, revert};
use crate::{Conclusion, Failure, Loop, LoopError, SuiteResult};

/// An accepted reproduction.
#[derive(Clone, Debug, PartialEq)]
pub struct Repro {
    /// The new failing tests; the first names the commit.
    pub tests: Vec<String>,
    /// The test files committed.
    pub files: Vec<String>,
    /// Short hash of the commit.
    pub commit: String,
}

/// Has the agent write a failing test for `bug` and commits it once tiller has checked it.
pub fn repro(lp: &mut Loop, bug: &str) -> Result<Conclusion<Repro>, LoopError> {
    let root = lp.verifier.root.clone();
    require_clean(&root)?;
    let base = lp.verifier.suite()?;
    if let Some(error) = &base.build_error {
        return Err(LoopError::Precondition(format!("the project does not build: {error}")));
    }
    let counts = json!({ "passed": base.passed.len(), "failed": base.failed.len() });
    lp.note("repro", "baseline", "ran", None, counts)?;
    let mut task = format!(
        "Write a test that reproduces this bug:\n\n{bug}\n\nAdd it as a new test function in a \
         test file (for example under tests/, or a test_*.py file); change no other file and no \
         existing test. The test must fail now, at an assertion, because of the bug, and pass \
         once the bug is fixed. Do not fix the bug. tiller runs the suite with `{}` to check.",
        lp.verifier.commands.test
    );
    let mut reason = String::new();
    for attempt in 1..=lp.attempts {
        lp.ask(&task, &|_| false)?;
        let files = changed_paths(&root)?;
        match check(lp, &base, &files)? {
            Ok(tests) => {
                let title = bug.lines().next().unwrap_or(bug).trim();
                let message = format!("Add failing test for {}", clip(title, 60));
                let trailers =
                    [(TEST_TRAILER, tests[0].clone()), (SESSION_TRAILER, lp.session.clone())];
                let hash = commit(&root, &files, &message, &trailers)?;
                let data =
                    json!({ "attempt": attempt, "tests": tests, "files": files, "commit": hash });
                lp.note("repro", "attempt", "accepted", None, data)?;
                return Ok(Conclusion::Accepted(Repro { tests, files, commit: hash }));
            }
            Err((why, output)) => {
                revert(&root, &files)?;
                lp.note(
                    "repro",
                    "attempt",
                    "rejected",
                    Some(&why),
                    json!({ "attempt": attempt, "files": files }),
                )?;
                task = format!(
                    "tiller rejected the test: {why}. Your changes were reverted. Output:\n{output}\n\n\
                     Try again: a new test that fails at an assertion because of the bug."
                );
                reason = why;
            }
        }
    }
    Ok(Conclusion::Rejected(reason))
}

/// The new tests if the change reproduces the bug; else why not and the output to show.
fn check(
    lp: &Loop,
    base: &SuiteResult,
    files: &[String],
) -> Result<Result<Vec<String>, (String, String)>, LoopError> {
    if files.is_empty() {
        return Ok(Err(("no file changed".into(), String::new())));
    }
    let other: Vec<&str> = files.iter().map(String::as_str).filter(|f| !is_test_path(f)).collect();
    if !other.is_empty() {
        let why = format!("only test files may change, but {} changed", other.join(", "));
        return Ok(Err((why, String::new())));
    }
    let after = lp.verifier.suite()?;
    let output = after.excerpt(3000);
    if after.build_error.is_some() {
        return Ok(Err(("the tests do not compile".into(), output)));
    }
    let before = base.tests();
    let new: Vec<String> =
        after.tests().into_iter().filter(|t| !before.contains(t)).map(str::to_string).collect();
    for test in &new {
        let why = match after.outcome(test) {
            Some(Err(Failure::Assertion)) => continue,
            Some(Ok(())) => format!("the new test {test} passes, so it does not show the bug"),
            Some(Err(Failure::Compile)) => format!("{test} does not compile or import"),
            Some(Err(Failure::Missing)) => format!("{test} fails because a file is missing"),
            Some(Err(Failure::Other)) | None => {
                format!("{test} fails with an error rather than at an assertion")
            }
        };
        return Ok(Err((why, output)));
    }
    if new.is_empty() {
        return Ok(Err(("the suite reports no new test".into(), output)));
    }
    for test in before {
        if after.outcome(test) != base.outcome(test) {
            let why = format!("{test} changed its outcome; other tests must stay as they were");
            return Ok(Err((why, output)));
        }
    }
    Ok(Ok(new))
}

//! `fix`: the agent changes code until the reproducing test passes and the whole suite is
//! green; tiller refuses any change to the test's files, checks by running the suite, and makes
//! one commit.

use serde_json::json;
use tiller_tools::git::{SESSION_TRAILER, commit};
use tiller_tools::is_test_path;

use crate::git::{repro_commit, require_clean, revert};
use crate::{Conclusion, Loop, LoopError};

/// An accepted fix.
#[derive(Clone, Debug, PartialEq)]
pub struct Fixed {
    pub test: String,
    pub files: Vec<String>,
    pub commit: String,
}

/// Fixes the code so that `test` (by default, the one the latest repro commit added) passes.
/// The files of that repro commit are protected; without one, every test file is.
pub fn fix(lp: &mut Loop, test: Option<&str>) -> Result<Conclusion<Fixed>, LoopError> {
    let root = lp.verifier.root.clone();
    require_clean(&root)?;
    let found = repro_commit(&root, test)?;
    let (test, protected) = match (test, found) {
        (_, Some((name, files))) => (name, files),
        (Some(name), None) => (name.to_string(), Vec::new()),
        (None, None) => {
            return Err(LoopError::Precondition(
                "no commit made by `tiller repro` here names a test; name one with --test".into(),
            ));
        }
    };
    let is_protected = |path: &str| {
        protected.iter().any(|p| p == path) || (protected.is_empty() && is_test_path(path))
    };
    let base = lp.verifier.one(&test)?;
    match base.outcome(&test) {
        Some(Err(_)) => {}
        Some(Ok(())) => {
            return Err(LoopError::Precondition(format!("{test} passes already: nothing to fix")));
        }
        None => {
            return Err(LoopError::Precondition(format!(
                "`{}` does not report a test named {test}",
                lp.verifier.commands.one(&test)
            )));
        }
    }
    lp.note("fix", "baseline", "failing", None, json!({ "test": test, "protected": protected }))?;
    let mut task = format!(
        "The test {test} fails: it reproduces a bug. Fix the code under test so that it passes \
         and the whole suite passes (`{}`). Do not change the test or its file{}: tiller refuses \
         such changes.\n\nOutput of the test:\n{}",
        lp.verifier.commands.test,
        if protected.is_empty() { "s".to_string() } else { format!(" ({})", protected.join(", ")) },
        base.excerpt(3000)
    );
    let mut reason = String::new();
    for attempt in 1..=lp.attempts {
        let (files, touched) = lp.attempt(&task, &is_protected, "the test's files")?;
        let (why, output) = if let Some(why) = touched {
            (why, String::new())
        } else if files.is_empty() {
            ("nothing changed".to_string(), String::new())
        } else {
            let after = lp.verifier.suite()?;
            let output = after.excerpt(3000);
            let passes = after.outcome(&test) == Some(Ok(()));
            if passes && after.green() {
                let message = format!("Fix the bug that {test} reproduces");
                let hash =
                    commit(&root, &files, &message, &[(SESSION_TRAILER, lp.session.clone())])?;
                let data =
                    json!({ "attempt": attempt, "test": test, "files": files, "commit": hash });
                lp.note("fix", "attempt", "accepted", None, data)?;
                return Ok(Conclusion::Accepted(Fixed { test, files, commit: hash }));
            }
            let failing: Vec<&str> = after.failed.keys().map(String::as_str).collect();
            let why = if after.build_error.is_some() {
                "the code does not compile".to_string()
            } else if passes {
                format!("{test} passes but the suite does not (failing: {})", failing.join(", "))
            } else {
                format!("{test} still fails")
            };
            (why, output)
        };
        revert(&root, &files)?;
        lp.note(
            "fix",
            "attempt",
            "rejected",
            Some(&why),
            json!({ "attempt": attempt, "files": files }),
        )?;
        task = format!(
            "tiller rejected the fix: {why}. Your changes were reverted.\n{output}\n\nTry again: \
             change the code under test, not the test."
        );
        reason = why;
    }
    Ok(Conclusion::Rejected(reason))
}

//! `sweep`: find a bug, reproduce it, fix it, commit both; again, until `max` pairs, a token
//! budget, a rejected step, or the model finding nothing more.

use serde_json::json;

use crate::git::{changed_paths, revert};
use crate::{Conclusion, Loop, LoopError, fix, repro};

/// What to sweep and when to stop.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    /// Most test-and-fix pairs.
    pub max: u32,
    /// Where to look (files or folders); empty means the whole project.
    pub paths: Vec<String>,
    /// Stop before a new round once the agent has used this many tokens (prompt + completion).
    pub budget_tokens: Option<u64>,
}

/// One bug, reproduced and fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub bug: String,
    pub test: String,
    pub test_commit: String,
    pub fix_commit: String,
}

/// The pairs committed, and why the sweep stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub pairs: Vec<Pair>,
    pub stopped: String,
    /// Whether it stopped because tiller rejected the agent's work.
    pub rejected: bool,
}

/// Runs rounds of find, [`repro`] and [`fix`] until a limit.
pub fn sweep(lp: &mut Loop, options: &SweepOptions) -> Result<Sweep, LoopError> {
    let mut pairs: Vec<Pair> = Vec::new();
    let where_ = if options.paths.is_empty() {
        "this project".to_string()
    } else {
        options.paths.join(", ")
    };
    let (stopped, rejected) = loop {
        if pairs.len() as u32 >= options.max {
            break (format!("reached the limit of {} pairs", options.max), false);
        }
        let usage = lp.agent.usage();
        let spent = usage.tokens();
        if options.budget_tokens.is_some_and(|b| spent >= b) {
            break (format!("spent the token budget ({spent} tokens)"), false);
        }
        let done: Vec<&str> = pairs.iter().map(|p| p.bug.as_str()).collect();
        let task = format!(
            "Find one bug in {where_}: read the code and its tests, change nothing. Answer with \
             a short description of the bug: the input, what happens, what should happen. If \
             you find no bug, answer exactly NONE.{}",
            if done.is_empty() {
                String::new()
            } else {
                format!("\nAlready fixed:\n- {}", done.join("\n- "))
            }
        );
        let answer = lp.ask(&task, &|_| false)?;
        // Finding is read-only; anything written on the way is put back.
        revert(&lp.verifier.root, &changed_paths(&lp.verifier.root)?)?;
        let bug = answer.trim().to_string();
        if bug.is_empty() || bug.eq_ignore_ascii_case("none") || bug.starts_with("NONE") {
            lp.note("sweep", "find", "none", None, json!({ "round": pairs.len() + 1 }))?;
            break ("the model found no more bugs".to_string(), false);
        }
        lp.note("sweep", "find", "found", None, json!({ "round": pairs.len() + 1, "bug": bug }))?;
        let reproduced = match repro(lp, &bug)? {
            Conclusion::Accepted(r) => r,
            Conclusion::Rejected(why) => break (format!("repro rejected: {why}"), true),
        };
        let test = reproduced.tests[0].clone();
        match fix(lp, Some(&test))? {
            Conclusion::Accepted(fixed) => pairs.push(Pair {
                bug,
                test,
                test_commit: reproduced.commit,
                fix_commit: fixed.commit,
            }),
            Conclusion::Rejected(why) => {
                let why = format!(
                    "fix rejected: {why} (the failing test stays committed as {})",
                    reproduced.commit
                );
                break (why, true);
            }
        }
    };
    let data = json!({ "pairs": pairs.len(), "commits": pairs.iter().map(|p| [&p.test_commit, &p.fix_commit]).collect::<Vec<_>>() });
    lp.note("sweep", "end", if rejected { "rejected" } else { "done" }, Some(&stopped), data)?;
    Ok(Sweep { pairs, stopped, rejected })
}

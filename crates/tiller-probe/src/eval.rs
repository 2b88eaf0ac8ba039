//! `tiller eval`: the agent, with its tools, solves each task of a suite in a scratch git
//! repository. The tests are written back from the suite before grading, so that an agent that
//! edited them gains nothing. A task that fails gets one more try with the grader's output.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tiller_agent::{AcceptAll, Agent};
use tiller_tools::ToolError;
use tiller_tools::git::{commit, git};

use crate::{Grader, Language, Outcome, ProbeError, Suite, Task};

/// How the agent did on one task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalTask {
    pub task: String,
    pub first_try: Outcome,
    /// The outcome after the grader's output was given back; `None` when the first try passed.
    pub second_try: Option<Outcome>,
    /// Prompt plus completion tokens over both tries.
    pub tokens: u64,
    pub seconds: f64,
    /// Why the agent stopped without answering, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    pub suite: String,
    pub suite_version: String,
    pub tasks: Vec<EvalTask>,
    pub first_try_rate: f64,
    pub second_try_rate: f64,
    pub tokens: u64,
    pub seconds: f64,
}

/// Evaluates `suite`, with `agent_for(root)` making a fresh agent for each scratch repository,
/// calling `progress` after each task.
pub fn eval(
    suite: &Suite,
    grader: &Grader,
    agent_for: &mut dyn FnMut(&Path) -> Result<Agent, String>,
    progress: &mut dyn FnMut(&EvalTask),
) -> Result<EvalReport, ProbeError> {
    let mut tasks = Vec::new();
    for task in suite.tasks.iter().filter(|t| t.language.available()) {
        let done = one(task, grader, agent_for)?;
        progress(&done);
        tasks.push(done);
    }
    let n = tasks.len().max(1) as f64;
    let first = tasks.iter().filter(|t| t.first_try == Outcome::Pass).count() as f64;
    let second =
        tasks.iter().filter(|t| t.second_try.unwrap_or(t.first_try) == Outcome::Pass).count()
            as f64;
    Ok(EvalReport {
        suite: suite.name.clone(),
        suite_version: suite.version.clone(),
        first_try_rate: first / n,
        second_try_rate: second / n,
        tokens: tasks.iter().map(|t| t.tokens).sum(),
        seconds: tasks.iter().map(|t| t.seconds).sum(),
        tasks,
    })
}

fn one(
    task: &Task,
    grader: &Grader,
    agent_for: &mut dyn FnMut(&Path) -> Result<Agent, String>,
) -> Result<EvalTask, ProbeError> {
    let start = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("tiller-eval-")
        .tempdir()
        .map_err(|e| ProbeError::io("cannot create a scratch repository", e))?;
    let root = dir.path();
    let lang = task.language;
    let write = |name: &str, text: &str| {
        std::fs::write(root.join(name), text).map_err(|e| ProbeError::io(name.to_owned(), e))
    };
    write(lang.solution_file(), task.stub.as_deref().unwrap_or(""))?;
    write(lang.test_file(), &task.tests)?;
    let setup = |e: ToolError| {
        ProbeError::io("cannot set up the scratch repository", std::io::Error::other(e))
    };
    git(root, &["init", "-q"]).map_err(setup)?;
    let files = [lang.solution_file().to_string(), lang.test_file().to_string()];
    commit(root, &files, "task", &[]).map_err(setup)?;

    let mut agent = agent_for(root).map_err(ProbeError::Agent)?;
    let exports = match lang {
        Language::Javascript => " Export the function with `module.exports`.",
        Language::Python | Language::Sh => "",
    };
    let prompt = format!(
        "{}\n\nWrite the solution in `{}`.{exports} The tests are in `{}`; run them with `{} {}`. \
         Do not change the tests.",
        task.prompt.trim(),
        lang.solution_file(),
        lang.test_file(),
        lang.interpreter().0,
        lang.test_file()
    );
    let mut error = agent.run(&prompt, &mut AcceptAll, &mut |_| {}).err().map(|e| e.to_string());
    let first = grader.test(task, root)?;
    let mut second_try = None;
    if first.outcome != Outcome::Pass {
        let feedback = format!(
            "The tests fail:\n\n{}\n\nFix the solution.",
            first.detail.as_deref().unwrap_or("(no output)")
        );
        error = agent.run(&feedback, &mut AcceptAll, &mut |_| {}).err().map(|e| e.to_string());
        second_try = Some(grader.test(task, root)?.outcome);
    }
    let usage = agent.usage();
    Ok(EvalTask {
        task: task.id.clone(),
        first_try: first.outcome,
        second_try,
        tokens: usage.tokens(),
        seconds: start.elapsed().as_secs_f64(),
        error,
    })
}

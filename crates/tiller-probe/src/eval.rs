//! `tiller eval`: the agent, with its tools, fixes each task's scratch git repository until the
//! task's tests pass. The test files are checked and written back before grading, so that an
//! agent that edited them gains nothing. A task that fails gets one more try with the grader's
//! output, within the task's time. Each task's final outcome is a `ProbeTrial` in the ledger,
//! so that `probe compare` sets two configurations side by side.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tiller_agent::{AcceptAll, Agent};
use tiller_ledger::{Entry, Ledger, ProbeTrial, sha256_hex};
use tiller_model::{Cancel, ModelInfo};
use tiller_tools::ToolError;
use tiller_tools::git::{commit, git};
use tiller_types::AgentEvent;

use crate::run::RunOptions;
use crate::{Grade, Grader, ProbeError, RepoTask, Suite};

/// Makes a fresh agent, and says which model it runs, for the scratch repository at a path.
pub type AgentFor<'a> = dyn FnMut(&Path) -> Result<(Agent, ModelInfo), String> + 'a;

/// How to evaluate.
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    /// The run's id and label, samples per task, and the sampling settings recorded.
    pub run: RunOptions,
    /// Wall time for one task, both tries together; the agent is stopped when it is spent.
    pub task_time: Option<Duration>,
}

/// Where a task was lost, read from what the agent left in the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Solved,
    /// The test files were changed.
    TestsEdited,
    /// No file but the tests was changed.
    NoEdit,
    /// Files were changed, none of them one the reference fix changes.
    WrongFile,
    /// A file the reference fix changes was changed, and the tests still fail.
    WrongLines,
}

impl Stage {
    /// The name reports use, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Solved => "solved",
            Stage::TestsEdited => "tests_edited",
            Stage::NoEdit => "no_edit",
            Stage::WrongFile => "wrong_file",
            Stage::WrongLines => "wrong_lines",
        }
    }
}

/// How the agent did on one task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalTask {
    pub task: String,
    pub sample: u32,
    pub first_try: Grade,
    /// The outcome after the grader's output was given back; `None` when the first try passed
    /// or the task's time was spent.
    pub second_try: Option<Grade>,
    pub stage: Stage,
    /// Model turns over both tries.
    pub steps: u32,
    /// Tool calls that failed (bad arguments, edits that did not apply, refused paths).
    pub failed_calls: u32,
    /// Prompt plus completion tokens over both tries.
    pub tokens: u64,
    pub seconds: f64,
    /// Why the agent stopped without answering, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EvalTask {
    pub fn outcome(&self) -> Grade {
        self.second_try.unwrap_or(self.first_try)
    }
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    pub run_id: String,
    pub suite: String,
    pub suite_version: String,
    pub tasks: Vec<EvalTask>,
    pub first_try_rate: f64,
    pub second_try_rate: f64,
    /// Tasks by the stage they reached.
    pub stages: BTreeMap<Stage, usize>,
    pub tokens: u64,
    pub seconds: f64,
}

/// Evaluates `suite`, with `agent_for(root)` making a fresh agent for each scratch repository,
/// appending each task's trial to `ledger` and calling `progress` after it.
pub fn eval(
    suite: &Suite<RepoTask>,
    grader: &Grader,
    ledger: &Ledger,
    opts: &EvalOptions,
    agent_for: &mut AgentFor,
    progress: &mut dyn FnMut(&EvalTask),
) -> Result<EvalReport, ProbeError> {
    let mut tasks = Vec::new();
    let available: Vec<&RepoTask> = suite.tasks.iter().filter(|t| t.available()).collect();
    for sample in 0..opts.run.samples.max(1) {
        for task in &available {
            let (done, trial) = one(suite, task, sample, grader, opts, agent_for)?;
            ledger.append(&[Entry::now(opts.run.run_id.as_str(), trial)])?;
            progress(&done);
            tasks.push(done);
        }
    }
    let n = tasks.len().max(1) as f64;
    let rate = |pass: &dyn Fn(&EvalTask) -> bool| tasks.iter().filter(|t| pass(t)).count() as f64;
    let mut stages = BTreeMap::new();
    for t in &tasks {
        *stages.entry(t.stage).or_default() += 1;
    }
    Ok(EvalReport {
        run_id: opts.run.run_id.clone(),
        suite: suite.name.clone(),
        suite_version: suite.version.clone(),
        first_try_rate: rate(&|t| t.first_try == Grade::Pass) / n,
        second_try_rate: rate(&|t| t.outcome() == Grade::Pass) / n,
        stages,
        tokens: tasks.iter().map(|t| t.tokens).sum(),
        seconds: tasks.iter().map(|t| t.seconds).sum(),
        tasks,
    })
}

fn one(
    suite: &Suite<RepoTask>,
    task: &RepoTask,
    sample: u32,
    grader: &Grader,
    opts: &EvalOptions,
    agent_for: &mut AgentFor,
) -> Result<(EvalTask, ProbeTrial), ProbeError> {
    let start = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("tiller-eval-")
        .tempdir()
        .map_err(|e| ProbeError::io("cannot create a scratch repository", e))?;
    let root = dir.path();
    task.write(root, None)?;
    let setup = |e: ToolError| {
        ProbeError::io("cannot set up the scratch repository", std::io::Error::other(e))
    };
    git(root, &["init", "-q"]).map_err(setup)?;
    let files: Vec<String> = task.files.keys().cloned().collect();
    commit(root, &files, "task", &[]).map_err(setup)?;

    let (mut agent, info) = agent_for(root).map_err(ProbeError::Agent)?;
    let deadline = opts.task_time.map(|t| start + t);
    let (mut steps, mut failed_calls) = (0, 0);
    let mut events = |e: &AgentEvent| match e {
        AgentEvent::TurnStarted { .. } => steps += 1,
        AgentEvent::ToolResult { is_error: true, .. } => failed_calls += 1,
        _ => {}
    };
    let message = task.message();
    let mut error = within(&agent.cancel_handle(), deadline, || {
        agent.run(&message, &mut AcceptAll, &mut events).err().map(|e| e.to_string())
    });
    let first = grader.check(task, root)?;
    let mut second_try = None;
    let time_left = deadline.is_none_or(|d| Instant::now() < d);
    if first.outcome != Grade::Pass && time_left {
        let feedback = format!(
            "The tests fail:\n\n{}\n\nFix the code.",
            first.detail.as_deref().unwrap_or("(no output)")
        );
        error = within(&agent.cancel_handle(), deadline, || {
            agent.run(&feedback, &mut AcceptAll, &mut events).err().map(|e| e.to_string())
        });
        second_try = Some(grader.check(task, root)?);
    }
    let last = second_try.as_ref().unwrap_or(&first);
    let changed = task.changed(root);
    let done = EvalTask {
        task: task.id.clone(),
        sample,
        first_try: first.outcome,
        second_try: second_try.as_ref().map(|g| g.outcome),
        stage: stage(task, last.outcome, &changed),
        steps,
        failed_calls,
        tokens: agent.usage().tokens(),
        seconds: start.elapsed().as_secs_f64(),
        error,
    };
    let usage = agent.usage();
    let trial = ProbeTrial {
        run_id: opts.run.run_id.clone(),
        suite: suite.name.clone(),
        suite_version: suite.version.clone(),
        task: task.id.clone(),
        prompt_sha256: sha256_hex(message.as_bytes()),
        sample,
        provider: info.provider.name().into(),
        endpoint: info.endpoint,
        model_requested: info.model.clone(),
        model_returned: info.model,
        temperature: opts.run.temperature,
        max_tokens: opts.run.max_tokens,
        outcome: done.outcome().as_str().into(),
        detail: last.detail.clone(),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        latency_ms: start.elapsed().as_millis() as u64,
        config_label: opts.run.label.clone(),
        steps: Some(steps),
        ..ProbeTrial::default()
    };
    Ok((done, trial))
}

/// Runs `work`, cancelling `cancel` if it is still running at `deadline`, and again every tenth
/// of a second until it ends (an agent clears the flag as it starts a run).
fn within<R>(cancel: &Cancel, deadline: Option<Instant>, work: impl FnOnce() -> R) -> R {
    let Some(deadline) = deadline else {
        return work();
    };
    let (done, wait) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let cancel = cancel.clone();
        scope.spawn(move || {
            let mut left = deadline.saturating_duration_since(Instant::now());
            // Only a timeout, not `done` going away, means the time was spent.
            while wait.recv_timeout(left) == Err(mpsc::RecvTimeoutError::Timeout) {
                cancel.cancel();
                left = Duration::from_millis(100);
            }
        });
        let result = work();
        drop(done);
        result
    })
}

/// Where `task` stands, given the last outcome and the files `changed` from the task's.
fn stage(task: &RepoTask, outcome: Grade, changed: &[String]) -> Stage {
    let code: Vec<&String> = changed.iter().filter(|f| !task.test_files.contains(f)).collect();
    match outcome {
        Grade::Pass => Stage::Solved,
        Grade::TestsEdited => Stage::TestsEdited,
        _ if code.is_empty() => Stage::NoEdit,
        _ if !task.fix.is_empty() && !task.fix.iter().any(|e| code.contains(&&e.file)) => {
            Stage::WrongFile
        }
        _ => Stage::WrongLines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_says_where_a_task_was_lost() {
        let suite = Suite::bugfix().unwrap();
        let task = suite.tasks.iter().find(|t| t.id == "py-cart-discount").unwrap();
        let stage = |outcome, changed: &[&str]| {
            let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
            stage(task, outcome, &changed)
        };
        assert_eq!(stage(Grade::Pass, &["pricing.py"]), Stage::Solved);
        assert_eq!(stage(Grade::TestsEdited, &["test_cart.py"]), Stage::TestsEdited);
        assert_eq!(stage(Grade::TestFailure, &[]), Stage::NoEdit);
        assert_eq!(stage(Grade::TestFailure, &["cart.py"]), Stage::WrongFile);
        assert_eq!(stage(Grade::Timeout, &["cart.py", "pricing.py"]), Stage::WrongLines);
    }

    #[test]
    fn work_past_its_deadline_is_cancelled() {
        let cancel = Cancel::default();
        let soon = Some(Instant::now() + Duration::from_millis(50));
        within(&cancel, soon, || std::thread::sleep(Duration::from_millis(300)));
        assert!(cancel.is_cancelled());
        let cancel = Cancel::default();
        let past = Some(Instant::now() - Duration::from_millis(1));
        let seen = within(&cancel, past, || {
            std::thread::sleep(Duration::from_millis(50));
            cancel.reset();
            std::thread::sleep(Duration::from_millis(300));
            cancel.is_cancelled()
        });
        assert!(seen, "cancelled again after the work cleared the flag");
        let cancel = Cancel::default();
        within(&cancel, Some(Instant::now() + Duration::from_secs(60)), || ());
        assert!(!cancel.is_cancelled(), "finished in time");
    }
}

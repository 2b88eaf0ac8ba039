//! Running a suite against a model: every task `samples` times, on `jobs` threads with a
//! provider each, each answer graded and stored in the ledger as a [`ProbeTrial`] as soon as it
//! is graded, so that an interrupted run keeps what it did.
//!
//! Trials go out sample by sample (every task once, then every task again, …), so that any
//! prefix of a run covers the tasks evenly: the sequential checks in `compare` read the stream
//! in this order, and a cancelled run is still a fair sample.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tiller_ledger::{Entry, Ledger, ProbeTrial, sha256_hex};
use tiller_model::{Cancel, ModelError, Provider, Request};
use tiller_types::Message;

use crate::{Grade, Grader, ProbeError, Suite, Task};

/// How to run a probe.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Names the run; becomes the ledger entries' session.
    pub run_id: String,
    /// Trials per task.
    pub samples: u32,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// The user's name for this configuration.
    pub label: Option<String>,
}

/// Where a run stands, for a progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub passed: usize,
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub suite: String,
    pub suite_version: String,
    pub passed: usize,
    /// Trials by outcome name.
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Tasks left out because their interpreter is missing.
    pub skipped: Vec<String>,
    /// Stopped before every trial ran.
    pub cancelled: bool,
    #[serde(skip)]
    pub trials: Vec<ProbeTrial>,
}

/// Runs `suite` with `opts`, one thread per provider, grading with `grader` and appending each
/// trial to `ledger`. Setting `cancel` stops the run after the trials under way.
pub fn run(
    suite: &Suite,
    providers: Vec<Box<dyn Provider>>,
    grader: &Grader,
    ledger: &Ledger,
    opts: &RunOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RunSummary, ProbeError> {
    let (tasks, skipped): (Vec<&Task>, Vec<&Task>) =
        suite.tasks.iter().partition(|t| t.language.available());
    let work: Vec<(&Task, u32)> =
        (0..opts.samples).flat_map(|s| tasks.iter().map(move |t| (*t, s))).collect();
    let mut summary = RunSummary {
        run_id: opts.run_id.clone(),
        suite: suite.name.clone(),
        suite_version: suite.version.clone(),
        passed: 0,
        outcomes: BTreeMap::new(),
        skipped: skipped.iter().map(|t| t.id.clone()).collect(),
        cancelled: false,
        trials: Vec::new(),
    };
    let mut state = Progress { total: work.len(), ..Progress::default() };
    progress(&state);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let result = std::thread::scope(|scope| {
        for mut provider in providers {
            let (tx, work, next, stop) = (tx.clone(), &work, &next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) && !cancel.is_cancelled() {
                    let Some(&(task, sample)) = work.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    let trial =
                        attempt(provider.as_mut(), suite, task, sample, grader, opts, cancel);
                    if tx.send(trial).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for trial in rx {
            // On an error the workers finish their current trial and stop; the rest drain here.
            let trial = match trial {
                Ok(Some(trial)) => trial,
                Ok(None) => continue,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            };
            ledger.append(&[Entry::now(opts.run_id.as_str(), trial.clone())])?;
            state.done += 1;
            if trial.outcome == Grade::Pass.as_str() {
                state.passed += 1;
            }
            progress(&state);
            summary.trials.push(trial);
        }
        Ok(())
    });
    result?;
    for trial in &summary.trials {
        let outcome = Grade::parse(&trial.outcome).unwrap_or(Grade::ApiError);
        *summary.outcomes.entry(outcome.as_str()).or_default() += 1;
    }
    summary.passed = state.passed;
    summary.cancelled = state.done < state.total;
    Ok(summary)
}

/// One trial: ask, time, grade. `None` when the call was cancelled, which is no trial at all.
fn attempt(
    provider: &mut dyn Provider,
    suite: &Suite,
    task: &Task,
    sample: u32,
    grader: &Grader,
    opts: &RunOptions,
    cancel: &Cancel,
) -> Result<Option<ProbeTrial>, ProbeError> {
    let message = task.message();
    let request = Request {
        messages: vec![Message::User { content: message.clone() }],
        temperature: opts.temperature,
        max_tokens: opts.max_tokens,
        ..Request::default()
    };
    let info = provider.info();
    let start = Instant::now();
    let mut first: Option<Duration> = None;
    let result = provider.complete(&request, cancel, &mut |_| {
        first.get_or_insert_with(|| start.elapsed());
    });
    let latency = start.elapsed();
    let mut trial = ProbeTrial {
        run_id: opts.run_id.clone(),
        suite: suite.name.clone(),
        suite_version: suite.version.clone(),
        task: task.id.clone(),
        prompt_sha256: sha256_hex(message.as_bytes()),
        sample,
        provider: info.provider.name().into(),
        endpoint: info.endpoint,
        model_requested: info.model,
        temperature: opts.temperature,
        max_tokens: opts.max_tokens,
        ttft_ms: first.map(|d| d.as_millis() as u64),
        latency_ms: latency.as_millis() as u64,
        config_label: opts.label.clone(),
        ..ProbeTrial::default()
    };
    let completion = match result {
        Ok(c) => c,
        Err(ModelError::Cancelled) => return Ok(None),
        Err(e) => {
            trial.outcome = Grade::ApiError.as_str().into();
            trial.detail = Some(e.to_string());
            return Ok(Some(trial));
        }
    };
    let decode = latency.saturating_sub(first.unwrap_or_default()).as_secs_f64();
    trial.model_returned = completion.model.clone();
    trial.prompt_tokens = completion.usage.prompt_tokens;
    trial.completion_tokens = completion.usage.completion_tokens;
    trial.decode_tps = (decode > 0.0 && trial.completion_tokens > 0)
        .then(|| trial.completion_tokens as f64 / decode);
    let graded = grader.grade(task, &completion.content)?;
    trial.outcome = graded.outcome.as_str().into();
    trial.detail = graded.detail;
    Ok(Some(trial))
}

/// Tasks that told nothing in a calibration run, and the ones worth keeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Calibration {
    pub always_pass: Vec<String>,
    pub always_fail: Vec<String>,
    /// Tasks that sometimes pass and sometimes fail, in first-seen order.
    pub keep: Vec<String>,
}

/// Sorts the tasks of `trials` by whether they always passed, always failed, or varied. A task
/// whose trials all agree cannot show a change in pass rate until the change is large, so a
/// calibrated suite spends its samples where they can tell.
pub fn calibrate(trials: &[ProbeTrial]) -> Calibration {
    let mut seen: Vec<(&str, usize, usize)> = Vec::new();
    for t in trials {
        let pass = usize::from(t.outcome == Grade::Pass.as_str());
        match seen.iter_mut().find(|(id, ..)| *id == t.task) {
            Some((_, passed, n)) => (*passed, *n) = (*passed + pass, *n + 1),
            None => seen.push((&t.task, pass, 1)),
        }
    }
    let mut cal = Calibration::default();
    for (id, passed, n) in seen {
        let list = match passed {
            0 => &mut cal.always_fail,
            p if p == n => &mut cal.always_pass,
            _ => &mut cal.keep,
        };
        list.push(id.to_owned());
    }
    cal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_sorts_tasks_by_agreement() {
        let t = |task: &str, outcome: Grade| ProbeTrial {
            task: task.into(),
            outcome: outcome.as_str().into(),
            ..ProbeTrial::default()
        };
        let trials = [
            t("a", Grade::Pass),
            t("b", Grade::TestFailure),
            t("c", Grade::Pass),
            t("a", Grade::Pass),
            t("b", Grade::ApiError),
            t("c", Grade::Timeout),
        ];
        let cal = calibrate(&trials);
        assert_eq!(cal.always_pass, ["a"]);
        assert_eq!(cal.always_fail, ["b"]);
        assert_eq!(cal.keep, ["c"]);
    }
}

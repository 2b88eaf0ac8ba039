//! The probe end to end: runs against providers through real grading into a real ledger, the
//! verdict rule on fixed windows, and the simulation that sets the documented window size.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tiller_ledger::{Ledger, ProbeTrial};
use tiller_model::{Cancel, Collector, Completion, ModelError, ModelInfo, Provider, Request};
use tiller_probe::compare::{Rule, Verdict, compare};
use tiller_probe::run::{Progress, RunOptions, run};
use tiller_probe::{Grade, Grader, Suite, Task};
use tiller_types::{Message, ProviderKind, StopReason, StreamEvent, Usage};

/// A small xorshift generator: deterministic, and enough for coin flips.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A model that knows every task of a suite and answers each correctly with probability `p`
/// (the reference solution) or wrongly (a function that returns nothing useful). Fails every
/// call whose prompt holds `fail_on`.
struct Fake {
    tasks: Vec<Task>,
    p: f64,
    rng: Rng,
    fail_on: Option<String>,
}

impl Provider for Fake {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: ProviderKind::Openai,
            model: "fake".into(),
            context_length: 4096,
            endpoint: Some("http://127.0.0.1:1/v1".into()),
        }
    }

    fn complete(
        &mut self,
        req: &Request,
        _cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        let Some(Message::User { content }) = req.messages.first() else { panic!("no prompt") };
        if self.fail_on.as_ref().is_some_and(|f| content.contains(f.as_str())) {
            return Err(ModelError::Config("the fake refuses this one".into()));
        }
        let task = self.tasks.iter().find(|t| t.message() == *content).expect("a known prompt");
        let code = if self.rng.next() < self.p {
            task.reference.clone()
        } else {
            format!(
                "{} {}\n",
                if task.language.fence_tags()[0] == "javascript" { "//" } else { "#" },
                task.entry_point
            )
        };
        let tag = task.language.fence_tags()[0];
        let mut out = Collector::new(on_event);
        out.emit(StreamEvent::TextDelta { text: format!("```{tag}\n{code}\n```\n") });
        let usage = Usage { prompt_tokens: 50, cached_tokens: 0, completion_tokens: 40 };
        out.emit(StreamEvent::Usage { usage });
        out.emit(StreamEvent::Done { stop: StopReason::EndTurn });
        Ok(out.finish("fake-v2".into(), None, 0))
    }
}

#[test]
fn a_run_on_three_jobs_grades_and_records_every_trial() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    let suite = Suite::basic().unwrap().retain(&[
        "py-roman".into(),
        "sh-stem".into(),
        "js-camel".into(),
        "py-luhn".into(),
    ]);
    let fake = |p: f64, seed: u64| -> Box<dyn Provider> {
        Box::new(Fake {
            tasks: suite.tasks.clone(),
            p,
            rng: Rng(seed),
            fail_on: Some("Luhn".into()),
        })
    };
    let opts = RunOptions {
        run_id: "run-a".into(),
        samples: 2,
        temperature: Some(0.2),
        label: Some("always right".into()),
        ..RunOptions::default()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let summary = run(
        &suite,
        vec![fake(1.0, 1), fake(1.0, 2), fake(1.0, 3)],
        &Grader::unconfined(),
        &ledger,
        &opts,
        &Cancel::default(),
        &mut |p: &Progress| log.lock().unwrap().push(*p),
    )
    .unwrap();
    let available = suite.tasks.iter().filter(|t| t.language.available()).count();
    assert_eq!(summary.trials.len(), available * 2);
    assert_eq!(summary.passed, (available - 1) * 2, "{:?}", summary.outcomes);
    assert_eq!(summary.outcomes["api_error"], 2);
    assert!(!summary.cancelled);
    let progress = seen.lock().unwrap();
    assert_eq!(progress.first().unwrap().done, 0);
    assert_eq!(progress.last().unwrap().done, available * 2);

    let stored = ledger.probe_trials(Some("tiller-basic")).unwrap();
    assert_eq!(stored.len(), available * 2);
    let roman: Vec<&ProbeTrial> =
        stored.iter().map(|s| &s.trial).filter(|t| t.task == "py-roman").collect();
    assert_eq!(roman.len(), 2);
    let t = roman[0];
    assert_eq!(
        (t.outcome.as_str(), t.model_requested.as_str(), t.model_returned.as_str()),
        ("pass", "fake", "fake-v2")
    );
    assert_eq!((t.suite_version.as_str(), t.run_id.as_str()), (suite.version.as_str(), "run-a"));
    assert_eq!(t.prompt_sha256, tiller_ledger::sha256_hex(suite.tasks[0].message().as_bytes()));
    assert_eq!((t.temperature, t.completion_tokens), (Some(0.2), 40));
    assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:1/v1"));
    assert_eq!(t.config_label.as_deref(), Some("always right"));
    assert!(t.ttft_ms.is_some());
    let failed = stored.iter().find(|s| s.trial.task == "py-luhn").unwrap();
    assert!(failed.trial.detail.as_deref().unwrap().contains("refuses"));

    // A second run that is always wrong reads as degraded against the first.
    let opts = RunOptions { run_id: "run-b".into(), ..opts };
    run(
        &suite,
        vec![fake(0.0, 4)],
        &Grader::unconfined(),
        &ledger,
        &opts,
        &Cancel::default(),
        &mut |_| {},
    )
    .unwrap();
    let all = ledger.probe_trials(None).unwrap();
    let (a, b) = tiller_probe::select(&all, None, None).unwrap();
    assert!(a.iter().all(|t| t.run_id == "run-a") && b.iter().all(|t| t.run_id == "run-b"));
    assert!(b.iter().any(|t| t.outcome == Grade::TestFailure.as_str()));
    // Every call for one task failed in both runs: 6 of 8 passed before, none now.
    assert_eq!(compare(&a, &b, &Rule::default()).pass_rate.difference, -0.75);
}

/// A window of `tasks × samples` simulated trials at pass rate `p`, graded by the fake's flag.
fn window(rng: &mut Rng, tasks: usize, samples: usize, p: f64) -> Vec<ProbeTrial> {
    let mut trials = Vec::with_capacity(tasks * samples);
    for sample in 0..samples {
        for task in 0..tasks {
            let outcome = if rng.next() < p { Grade::Pass } else { Grade::TestFailure };
            trials.push(ProbeTrial {
                task: format!("t{task}"),
                sample: sample as u32,
                outcome: outcome.as_str().into(),
                ..ProbeTrial::default()
            });
        }
    }
    trials
}

/// The window docs/probe.md recommends: 12 tasks (tiller-basic) × 40 samples.
const TASKS: usize = 12;
const SAMPLES: usize = 40;
const SIMULATIONS: usize = 200;

/// Share of simulated comparisons of a window at 0.7 against one at `recent` that come out as
/// degraded, and share that raised the CUSUM's suspect flag.
fn rates(recent: f64, seed: u64) -> (f64, f64) {
    let mut rng = Rng(seed);
    let (mut degraded, mut suspect) = (0, 0);
    for _ in 0..SIMULATIONS {
        let a = window(&mut rng, TASKS, SAMPLES, 0.7);
        let b = window(&mut rng, TASKS, SAMPLES, recent);
        let c = compare(&a, &b, &Rule::default());
        degraded += usize::from(c.verdict == Verdict::Degraded);
        suspect += usize::from(c.suspect);
    }
    (degraded as f64 / SIMULATIONS as f64, suspect as f64 / SIMULATIONS as f64)
}

#[test]
fn simulation_flags_a_ten_point_drop_and_leaves_an_unchanged_model_alone() {
    let (degraded, suspect) = rates(0.6, 7);
    eprintln!("0.7 → 0.6: degraded {degraded:.3}, suspect {suspect:.3}");
    assert!(degraded >= 0.80, "0.7 → 0.6 flagged in only {degraded:.2} of runs");
    assert!(suspect >= 0.80, "CUSUM raised in only {suspect:.2} of runs");
    let (degraded, suspect) = rates(0.7, 11);
    assert!(degraded <= 0.05, "0.7 → 0.7 flagged in {degraded:.2} of runs");
    assert!(suspect <= 0.15, "CUSUM raised in {suspect:.2} of unchanged runs");
    eprintln!("0.7 → 0.7: degraded {degraded:.3}, suspect {suspect:.3}");
}

#[test]
fn verdicts_on_fixed_windows() {
    let mut rng = Rng(3);
    // Identical large windows: ok, nothing flagged.
    let a = window(&mut rng, TASKS, SAMPLES, 0.7);
    let c = compare(&a, &a, &Rule::default());
    assert_eq!(c.verdict, Verdict::Ok, "{:?}", c.reasons);
    assert_eq!(c.pass_rate.difference, 0.0);
    // Two trials a side cannot rule anything out.
    let c = compare(&a[..2], &a[..2], &Rule::default());
    assert_eq!(c.verdict, Verdict::Inconclusive, "{:?}", c.reasons);

    // Same pass rate, time to first token 20% slower: degraded on speed alone.
    let timed = |trials: &[ProbeTrial], ms: u64| -> Vec<ProbeTrial> {
        let mut i = 0;
        trials
            .iter()
            .map(|t| {
                i += 1;
                ProbeTrial {
                    ttft_ms: Some(ms + i % 17),
                    decode_tps: Some(30.0 + (i % 5) as f64),
                    ..t.clone()
                }
            })
            .collect()
    };
    let c = compare(&timed(&a, 100), &timed(&a, 120), &Rule::default());
    let ttft = c.ttft_ms.as_ref().unwrap();
    assert!(ttft.flagged && !c.pass_rate.flagged, "{c:?}");
    assert_eq!(c.verdict, Verdict::Degraded);
    assert!(c.reasons[0].contains("time to first token"), "{:?}", c.reasons);
    // 5% slower is significant at this size, but below the 10% that counts.
    let c = compare(&timed(&a, 100), &timed(&a, 105), &Rule::default());
    assert!(c.ttft_ms.as_ref().unwrap().p_value < 0.05);
    assert!(!c.ttft_ms.unwrap().flagged && !c.decode_tps.unwrap().flagged);

    // The quick check decides early when the rate collapses.
    let b = window(&mut rng, TASKS, SAMPLES, 0.3);
    let c = compare(&a, &b, &Rule { quick: true, ..Rule::default() });
    let quick = c.quick.unwrap();
    assert_eq!((c.verdict, quick.decision), (Verdict::Degraded, "degraded"));
    assert!(quick.trials_used < 60, "{quick:?}");
    assert!(c.suspect);
}

/// The real HumanEval file, where `scripts/fetch-suite humaneval` installed it. `scripts/test`
/// installs it and sets `TILLER_EXPECT_HUMANEVAL` so that this cannot skip there.
#[test]
fn humaneval_loads_164_problems_and_its_reference_solutions_pass() {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share"),
    };
    let data = data.join("tiller");
    if !data.join("suites/HumanEval.jsonl.gz").is_file() {
        assert!(
            std::env::var_os("TILLER_EXPECT_HUMANEVAL").is_none(),
            "HumanEval is not installed"
        );
        eprintln!("skipping: run scripts/fetch-suite humaneval");
        return;
    }
    let suite = Suite::load("humaneval", &data).unwrap();
    assert_eq!(suite.tasks.len(), 164);
    assert_eq!(suite.tasks[0].id, "HumanEval/0");
    let grader = Grader::unconfined();
    for task in suite.tasks.iter().step_by(16) {
        let answer = format!("```python\n{}\n```", task.reference);
        let graded = grader.grade(task, &answer).unwrap();
        assert_eq!(graded.outcome, Grade::Pass, "{}: {:?}", task.id, graded.detail);
        // The canonical body alone completes the prompt's stub.
        let body = task.reference.strip_prefix(task.stub.as_deref().unwrap()).unwrap();
        let graded = grader.grade(task, &format!("```python\n{body}```")).unwrap();
        assert_eq!(graded.outcome, Grade::Pass, "{} (body only): {:?}", task.id, graded.detail);
    }
}

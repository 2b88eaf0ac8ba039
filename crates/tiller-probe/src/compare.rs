//! Two windows of trials side by side, and a verdict: degraded, ok or inconclusive.
//!
//! - Pass rate: a one-sided Cochran–Mantel–Haenszel test stratified by task (trials of one task
//!   are alike, trials of different tasks are not), with pooled Fisher beside it, and
//!   Newcombe's interval for the difference.
//! - Speed: one-sided Mann–Whitney U tests on time to first token and decode tokens/s.
//! - Holm's correction over those three p-values (a metric that cannot be tested counts as 1).
//!
//! The rule: **degraded** when a metric is flagged: the pass rate at adjusted p < `alpha` with a
//! drop of at least `min_effect`, or a speed metric at adjusted p < `alpha` with its median
//! worse by at least `speed_shift`. Otherwise **ok** when Newcombe's 95% interval rules out a
//! drop in pass rate of `tolerance` or more, else **inconclusive** (too few trials to say).
//! With `quick`, Wald's SPRT over the recent trials against the baseline rate decides instead.
//! A CUSUM over the recent trials raises `suspect` however the verdict goes.

use std::collections::BTreeMap;

use serde::Serialize;
use tiller_ledger::ProbeTrial;
use tiller_stats::{
    Alternative, Cusum, Sprt, SprtDecision, Table2, cmh, fisher_exact, holm, mann_whitney,
    newcombe, wilson,
};

use crate::Grade;

/// The CUSUM's alarm level: over a window of 480 trials at an unchanged rate of 0.7 it alarms
/// about one time in thirteen; after a drop to 0.6, nine times in ten (docs/probe.md).
const CUSUM_THRESHOLD: f64 = 5.0;

/// Thresholds of the verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// Significance level after Holm's correction.
    pub alpha: f64,
    /// Smallest drop in pass rate (a fraction: 0.05 is 5 points) that counts as degraded.
    pub min_effect: f64,
    /// Largest drop an ok verdict may leave open; also the drop the SPRT and CUSUM look for.
    pub tolerance: f64,
    /// Smallest relative slow-down of a speed median that counts (0.10 is 10%).
    pub speed_shift: f64,
    /// Decide by the sequential test alone.
    pub quick: bool,
}

impl Default for Rule {
    fn default() -> Self {
        Rule { alpha: 0.05, min_effect: 0.05, tolerance: 0.10, speed_shift: 0.10, quick: false }
    }
}

/// What the comparison concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Degraded,
    Ok,
    Inconclusive,
}

/// One window in numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowSummary {
    pub runs: Vec<String>,
    pub trials: u64,
    pub passed: u64,
    pub pass_rate: f64,
    /// Wilson 95% interval of the pass rate.
    pub pass_rate_ci: (f64, f64),
    pub outcomes: BTreeMap<&'static str, u64>,
    pub models_returned: Vec<String>,
    pub suite_versions: Vec<String>,
}

/// The pass-rate tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PassRate {
    /// Tasks in both windows.
    pub tasks: usize,
    /// One-sided CMH p-value (baseline passes more often); `None` when no task is informative.
    pub cmh_p: Option<f64>,
    pub odds_ratio: Option<f64>,
    /// One-sided Fisher exact p-value of the tasks pooled, for comparison.
    pub fisher_p: f64,
    /// Recent minus baseline pass rate, over the shared tasks.
    pub difference: f64,
    /// Newcombe's 95% interval of `difference`.
    pub difference_ci: (f64, f64),
    pub adjusted_p: f64,
    pub flagged: bool,
}

/// One speed metric's test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Speed {
    pub median_baseline: f64,
    pub median_recent: f64,
    /// Relative change of the median, recent against baseline (+0.1 is 10% higher).
    pub change: f64,
    /// Hodges–Lehmann estimate of recent − baseline, and its 95% interval.
    pub shift: f64,
    pub shift_ci: (f64, f64),
    /// One-sided, in the direction that is worse.
    pub p_value: f64,
    pub adjusted_p: f64,
    pub flagged: bool,
}

/// The sequential check of `--quick`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quick {
    pub p0: f64,
    pub p1: f64,
    /// Recent trials read before deciding (all of them when undecided).
    pub trials_used: usize,
    pub decision: &'static str,
}

/// A comparison of a baseline and a recent window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub verdict: Verdict,
    /// Why, in a sentence each.
    pub reasons: Vec<String>,
    /// The CUSUM over the recent trials crossed its threshold.
    pub suspect: bool,
    pub baseline: WindowSummary,
    pub recent: WindowSummary,
    pub pass_rate: PassRate,
    pub ttft_ms: Option<Speed>,
    pub decode_tps: Option<Speed>,
    pub quick: Option<Quick>,
    /// Things that make the comparison less clean, e.g. different suite versions.
    pub warnings: Vec<String>,
}

fn passed(t: &ProbeTrial) -> bool {
    t.outcome == Grade::Pass.as_str()
}

/// Compares `baseline` with `recent` (each in the order the trials were written) by `rule`.
pub fn compare(baseline: &[ProbeTrial], recent: &[ProbeTrial], rule: &Rule) -> Comparison {
    let (a, b) = (summarize(baseline), summarize(recent));
    let mut warnings = Vec::new();
    if a.suite_versions != b.suite_versions {
        warnings.push("the windows ran different suite versions; only shared tasks count".into());
    }
    if a.models_returned != b.models_returned {
        warnings.push(format!(
            "the endpoint named different models: {} before, {} now",
            a.models_returned.join(", "),
            b.models_returned.join(", ")
        ));
    }
    let mut pass_rate = pass_rate(baseline, recent);
    let ms = |t: &ProbeTrial| t.ttft_ms.map(|v| v as f64);
    let mut ttft = speed(baseline, recent, ms, Alternative::Less);
    let mut tps = speed(baseline, recent, |t| t.decode_tps, Alternative::Greater);
    let raw = [
        pass_rate.cmh_p.unwrap_or(1.0),
        ttft.as_ref().map_or(1.0, |s| s.p_value),
        tps.as_ref().map_or(1.0, |s| s.p_value),
    ];
    let adjusted = holm(&raw);
    pass_rate.adjusted_p = adjusted[0];
    pass_rate.flagged = adjusted[0] < rule.alpha && -pass_rate.difference >= rule.min_effect;
    let mut reasons = Vec::new();
    if pass_rate.flagged {
        reasons.push(format!(
            "pass rate fell {:.1} points (adjusted p = {:.3})",
            -pass_rate.difference * 100.0,
            adjusted[0]
        ));
    }
    for (s, p, name, worse) in [
        (&mut ttft, adjusted[1], "time to first token", 1.0),
        (&mut tps, adjusted[2], "decode speed", -1.0),
    ] {
        if let Some(s) = s {
            s.adjusted_p = p;
            s.flagged = p < rule.alpha && s.change * worse >= rule.speed_shift;
            if s.flagged {
                reasons.push(format!(
                    "{name} median {:.0} → {:.0} ({:+.0}%, adjusted p = {p:.3})",
                    s.median_baseline,
                    s.median_recent,
                    s.change * 100.0
                ));
            }
        }
    }
    let rate = a.pass_rate.clamp(0.01, 0.99);
    let p1 = (rate - rule.tolerance).max(0.005);
    let mut cusum = Cusum::new(rate, p1, CUSUM_THRESHOLD);
    // The alarm stays raised once it is: the trials after it cannot lower it.
    let suspect = recent.iter().any(|t| cusum.push(passed(t)));
    let quick = rule.quick.then(|| sprt(recent, rate, p1, rule.alpha));
    let verdict = match &quick {
        Some(q) => {
            reasons.push(format!(
                "sequential test after {} trials: {} (baseline rate {:.2} against {:.2})",
                q.trials_used, q.decision, q.p0, q.p1
            ));
            match q.decision {
                "degraded" => Verdict::Degraded,
                "ok" => Verdict::Ok,
                _ => Verdict::Inconclusive,
            }
        }
        None if !reasons.is_empty() => Verdict::Degraded,
        None if pass_rate.difference_ci.0 > -rule.tolerance => {
            reasons.push(format!(
                "no drop found, and one of {:.0} points or more is ruled out",
                rule.tolerance * 100.0
            ));
            Verdict::Ok
        }
        None => {
            reasons.push(format!(
                "no drop found, but one of {:.0} points cannot be ruled out: more trials needed",
                rule.tolerance * 100.0
            ));
            Verdict::Inconclusive
        }
    };
    Comparison {
        verdict,
        reasons,
        suspect,
        baseline: a,
        recent: b,
        pass_rate,
        ttft_ms: ttft,
        decode_tps: tps,
        quick,
        warnings,
    }
}

fn summarize(trials: &[ProbeTrial]) -> WindowSummary {
    let mut s = WindowSummary {
        runs: Vec::new(),
        trials: trials.len() as u64,
        passed: trials.iter().filter(|t| passed(t)).count() as u64,
        pass_rate: 0.0,
        pass_rate_ci: (0.0, 1.0),
        outcomes: BTreeMap::new(),
        models_returned: Vec::new(),
        suite_versions: Vec::new(),
    };
    for t in trials {
        let outcome = Grade::parse(&t.outcome).unwrap_or(Grade::ApiError);
        *s.outcomes.entry(outcome.as_str()).or_default() += 1;
        for (list, value) in [
            (&mut s.runs, &t.run_id),
            (&mut s.models_returned, &t.model_returned),
            (&mut s.suite_versions, &t.suite_version),
        ] {
            if !value.is_empty() && !list.contains(value) {
                list.push(value.clone());
            }
        }
    }
    s.models_returned.sort();
    s.suite_versions.sort();
    if s.trials > 0 {
        s.pass_rate = s.passed as f64 / s.trials as f64;
        s.pass_rate_ci = wilson(s.passed, s.trials, 0.95);
    }
    s
}

/// The stratified and pooled tests over the tasks both windows ran.
fn pass_rate(baseline: &[ProbeTrial], recent: &[ProbeTrial]) -> PassRate {
    let mut strata: BTreeMap<&str, Table2> = BTreeMap::new();
    for (trials, is_a) in [(baseline, true), (recent, false)] {
        for t in trials {
            let cell = strata.entry(&t.task).or_default();
            match (is_a, passed(t)) {
                (true, true) => cell.a_pass += 1,
                (true, false) => cell.a_fail += 1,
                (false, true) => cell.b_pass += 1,
                (false, false) => cell.b_fail += 1,
            }
        }
    }
    let shared: Vec<Table2> = strata
        .into_values()
        .filter(|c| c.a_pass + c.a_fail > 0 && c.b_pass + c.b_fail > 0)
        .collect();
    let pooled = shared.iter().fold(Table2::default(), |p, c| Table2 {
        a_pass: p.a_pass + c.a_pass,
        a_fail: p.a_fail + c.a_fail,
        b_pass: p.b_pass + c.b_pass,
        b_fail: p.b_fail + c.b_fail,
    });
    let (a_n, b_n) = (pooled.a_pass + pooled.a_fail, pooled.b_pass + pooled.b_fail);
    let rate = |pass, n| if n == 0 { 0.0 } else { pass as f64 / n as f64 };
    let test = cmh(&shared, Alternative::Greater);
    PassRate {
        tasks: shared.len(),
        cmh_p: test.map(|t| t.p_value),
        odds_ratio: test.map(|t| t.odds_ratio),
        fisher_p: fisher_exact(&pooled, Alternative::Greater),
        difference: rate(pooled.b_pass, b_n) - rate(pooled.a_pass, a_n),
        difference_ci: if a_n > 0 && b_n > 0 {
            newcombe(pooled.a_pass, a_n, pooled.b_pass, b_n, 0.95)
        } else {
            (-1.0, 1.0)
        },
        adjusted_p: 1.0,
        flagged: false,
    }
}

/// Mann–Whitney on one metric; `worse` is the alternative under which the baseline is better
/// (`Less`: the recent values tend to be larger).
fn speed(
    baseline: &[ProbeTrial],
    recent: &[ProbeTrial],
    metric: impl Fn(&ProbeTrial) -> Option<f64>,
    worse: Alternative,
) -> Option<Speed> {
    let values = |trials: &[ProbeTrial]| -> Vec<f64> {
        trials
            .iter()
            .filter(|t| t.outcome != Grade::ApiError.as_str())
            .filter_map(&metric)
            .collect()
    };
    let test = mann_whitney(&values(baseline), &values(recent), worse)?;
    let change = if test.median_a > 0.0 { test.median_b / test.median_a - 1.0 } else { 0.0 };
    Some(Speed {
        median_baseline: test.median_a,
        median_recent: test.median_b,
        change,
        shift: test.shift,
        shift_ci: test.shift_ci,
        p_value: test.p_value,
        adjusted_p: 1.0,
        flagged: false,
    })
}

/// Wald's SPRT over `recent` in order, between the baseline rate `p0` and `p1`.
fn sprt(recent: &[ProbeTrial], p0: f64, p1: f64, alpha: f64) -> Quick {
    let mut test = Sprt::new(p0, p1, alpha, 0.10);
    let mut used = recent.len();
    for (i, t) in recent.iter().enumerate() {
        if test.push(passed(t)) != SprtDecision::Continue {
            used = i + 1;
            break;
        }
    }
    let decision = match test.decision() {
        SprtDecision::AcceptH1 => "degraded",
        SprtDecision::AcceptH0 => "ok",
        SprtDecision::Continue => "undecided",
    };
    Quick { p0, p1, trials_used: used, decision }
}

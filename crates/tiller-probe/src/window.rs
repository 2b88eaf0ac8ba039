//! Windows of trials: a run (`--baseline RUN`) or a span of time (`--baseline 2025-06-01..
//! 2025-06-07`), and which windows a comparison takes when none is named: the latest run and
//! the run before it of the same model at the same endpoint.

use std::str::FromStr;

use tiller_ledger::{ProbeTrial, StoredTrial};

use crate::ProbeError;

/// A set of trials to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    /// The trials of one run.
    Run(String),
    /// Trials written in `[since_ms, until_ms)`.
    Span { since_ms: i64, until_ms: i64 },
}

impl FromStr for Window {
    type Err = ProbeError;

    /// `SINCE..UNTIL` (dates `YYYY-MM-DD` or times `YYYY-MM-DDTHH:MM:SSZ`, UTC; either may be
    /// left out; a date as `UNTIL` includes that day) or a run id.
    fn from_str(s: &str) -> Result<Window, ProbeError> {
        let Some((since, until)) = s.split_once("..") else {
            return Ok(Window::Run(s.to_owned()));
        };
        let time = |t: &str, end: bool| -> Result<i64, ProbeError> {
            match t {
                "" if end => Ok(i64::MAX),
                "" => Ok(i64::MIN),
                t => parse_utc(t, end).ok_or_else(|| {
                    ProbeError::Window(format!("`{t}` is not a date (YYYY-MM-DD) or a UTC time"))
                }),
            }
        };
        Ok(Window::Span { since_ms: time(since, false)?, until_ms: time(until, true)? })
    }
}

impl Window {
    fn holds(&self, t: &StoredTrial) -> bool {
        match self {
            Window::Run(id) => t.trial.run_id == *id,
            Window::Span { since_ms, until_ms } => (*since_ms..*until_ms).contains(&t.time_ms),
        }
    }
}

/// The baseline and recent trials of `trials` (in id order). Unnamed windows default to runs:
/// the recent one to the latest run (after the baseline, when that is named), the baseline to
/// the run before the recent one with the same provider, endpoint and model.
pub fn select(
    trials: &[StoredTrial],
    baseline: Option<&Window>,
    recent: Option<&Window>,
) -> Result<(Vec<ProbeTrial>, Vec<ProbeTrial>), ProbeError> {
    let runs = runs(trials);
    let pick = |w: &Window| -> Vec<ProbeTrial> {
        trials.iter().filter(|t| w.holds(t)).map(|t| t.trial.clone()).collect()
    };
    let first_id = |w: &Window| trials.iter().find(|t| w.holds(t)).map(|t| t.id);
    let recent = match recent {
        Some(w) => w.clone(),
        None => {
            let after = baseline.and_then(first_id).unwrap_or(i64::MIN);
            let run = runs.iter().rev().find(|r| r.1 > after);
            Window::Run(run.ok_or_else(|| none("no probe run to compare"))?.0.clone())
        }
    };
    let baseline = match baseline {
        Some(w) => w.clone(),
        None => {
            let start = first_id(&recent).ok_or_else(|| none("the recent window is empty"))?;
            let key = trials.iter().find(|t| recent.holds(t)).map(|t| model_key(&t.trial));
            let earlier = runs.iter().rev().find(|r| r.1 < start && Some(&r.2) == key.as_ref());
            let run = earlier.ok_or_else(|| {
                none("no earlier run of the same model to compare with; run `tiller probe run` again")
            })?;
            Window::Run(run.0.clone())
        }
    };
    let (a, b) = (pick(&baseline), pick(&recent));
    if a.is_empty() || b.is_empty() {
        let which = if a.is_empty() { "baseline" } else { "recent" };
        return Err(none(&format!("the {which} window holds no trials")));
    }
    Ok((a, b))
}

/// Each run's id, first row id and model key, in order of first row.
fn runs(trials: &[StoredTrial]) -> Vec<(String, i64, String)> {
    let mut runs: Vec<(String, i64, String)> = Vec::new();
    for t in trials {
        if !runs.iter().any(|r| r.0 == t.trial.run_id) {
            runs.push((t.trial.run_id.clone(), t.id, model_key(&t.trial)));
        }
    }
    runs
}

fn model_key(t: &ProbeTrial) -> String {
    format!("{} {} {}", t.provider, t.endpoint.as_deref().unwrap_or("-"), t.model_requested)
}

fn none(why: &str) -> ProbeError {
    ProbeError::Window(why.to_owned())
}

/// Milliseconds since the epoch of `YYYY-MM-DD` (its end when `end`) or
/// `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_utc(s: &str, end: bool) -> Option<i64> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (s, None),
    };
    let mut ymd = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let secs = match time {
        Some(t) => {
            let mut hms = t.splitn(3, ':').map(str::parse::<i64>);
            let (h, mi, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
            h * 3600 + mi * 60 + s
        }
        None if end => 86_400,
        None => 0,
    };
    Some((days_from_civil(y, m, d) * 86_400 + secs) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, run: &str, model: &str) -> StoredTrial {
        let trial = ProbeTrial {
            run_id: run.into(),
            model_requested: model.into(),
            ..ProbeTrial::default()
        };
        StoredTrial { id, time_ms: id * 1000, trial }
    }

    #[test]
    fn parses_runs_and_spans() {
        assert_eq!("run-1".parse::<Window>().unwrap(), Window::Run("run-1".into()));
        let day = 86_400_000;
        let span: Window = "1970-01-02..1970-01-02".parse().unwrap();
        assert_eq!(span, Window::Span { since_ms: day, until_ms: 2 * day });
        let open: Window = "2000-03-01T12:00:00Z..".parse().unwrap();
        assert_eq!(open, Window::Span { since_ms: 951_912_000_000, until_ms: i64::MAX });
        assert!("2000-13-01..".parse::<Window>().is_err());
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn defaults_to_the_latest_run_and_the_one_before_of_the_same_model() {
        let trials = [
            stored(1, "r1", "m"),
            stored(2, "r1", "m"),
            stored(3, "r2", "other"),
            stored(4, "r3", "m"),
        ];
        let (a, b) = select(&trials, None, None).unwrap();
        assert!(a.iter().all(|t| t.run_id == "r1") && a.len() == 2);
        assert!(b.iter().all(|t| t.run_id == "r3") && b.len() == 1);
        let r1 = Window::Run("r1".into());
        let (_, b) = select(&trials, Some(&r1), Some(&Window::Run("r2".into()))).unwrap();
        assert_eq!(b[0].run_id, "r2");
        let span = Window::Span { since_ms: 0, until_ms: 3500 };
        let (a, b) = select(&trials, Some(&span), None).unwrap();
        assert_eq!((a.len(), b[0].run_id.as_str()), (3, "r3"));
        let err = select(&trials[2..3], None, None).unwrap_err();
        assert!(err.to_string().contains("no earlier run"), "{err}");
    }
}

//! Watching a stream of pass/fail trials: Wald's sequential probability ratio test, which stops
//! as soon as the evidence decides between two pass rates, and a Bernoulli CUSUM, which raises
//! an alarm once failures accumulate faster than the baseline rate allows.

/// What an [`Sprt`] has concluded so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SprtDecision {
    /// Not enough evidence either way yet.
    Continue,
    /// The pass rate is `p0`.
    AcceptH0,
    /// The pass rate is `p1`.
    AcceptH1,
}

/// Wald's SPRT between pass rates `p0` (H0) and `p1` (H1), with error rates `alpha` (deciding
/// H1 when H0 holds) and `beta` (deciding H0 when H1 holds).
#[derive(Clone, Debug, PartialEq)]
pub struct Sprt {
    pass_step: f64,
    fail_step: f64,
    upper: f64,
    lower: f64,
    llr: f64,
    decision: SprtDecision,
}

impl Sprt {
    pub fn new(p0: f64, p1: f64, alpha: f64, beta: f64) -> Sprt {
        Sprt {
            pass_step: (p1 / p0).ln(),
            fail_step: ((1.0 - p1) / (1.0 - p0)).ln(),
            upper: ((1.0 - beta) / alpha).ln(),
            lower: (beta / (1.0 - alpha)).ln(),
            llr: 0.0,
            decision: SprtDecision::Continue,
        }
    }

    /// Adds one trial. Once decided, the decision stands.
    pub fn push(&mut self, pass: bool) -> SprtDecision {
        if self.decision == SprtDecision::Continue {
            self.llr += if pass { self.pass_step } else { self.fail_step };
            if self.llr >= self.upper {
                self.decision = SprtDecision::AcceptH1;
            } else if self.llr <= self.lower {
                self.decision = SprtDecision::AcceptH0;
            }
        }
        self.decision
    }

    pub fn decision(&self) -> SprtDecision {
        self.decision
    }

    /// The log-likelihood ratio of H1 against H0 so far.
    pub fn llr(&self) -> f64 {
        self.llr
    }
}

/// A Bernoulli CUSUM for a drop in pass rate from `p0` to `p1`: the log-likelihood-ratio
/// statistic `S = max(0, S + w)` per trial, alarming at `threshold`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cusum {
    pass_step: f64,
    fail_step: f64,
    threshold: f64,
    statistic: f64,
    alarm: bool,
}

impl Cusum {
    pub fn new(p0: f64, p1: f64, threshold: f64) -> Cusum {
        Cusum {
            pass_step: (p1 / p0).ln(),
            fail_step: ((1.0 - p1) / (1.0 - p0)).ln(),
            threshold,
            statistic: 0.0,
            alarm: false,
        }
    }

    /// Adds one trial; whether the alarm has been raised (it stays raised).
    pub fn push(&mut self, pass: bool) -> bool {
        let step = if pass { self.pass_step } else { self.fail_step };
        self.statistic = (self.statistic + step).max(0.0);
        self.alarm |= self.statistic >= self.threshold;
        self.alarm
    }

    pub fn statistic(&self) -> f64 {
        self.statistic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Wald (1947): with alpha = beta = 0.05 the boundaries are ln 19 = 2.944 and −ln 19.
    #[test]
    fn sprt_boundaries_and_decisions() {
        let s = Sprt::new(0.5, 0.6, 0.05, 0.05);
        assert!((s.upper - 19f64.ln()).abs() < 1e-12 && (s.lower + 19f64.ln()).abs() < 1e-12);
        // Each failure adds ln(0.4/0.5) = −0.2231; fourteen of them pass −ln 19 (13 do not).
        let mut s = Sprt::new(0.5, 0.6, 0.05, 0.05);
        for _ in 0..13 {
            assert_eq!(s.push(false), SprtDecision::Continue);
        }
        assert_eq!(s.push(false), SprtDecision::AcceptH0);
        assert_eq!(s.push(true), SprtDecision::AcceptH0, "a decision stands");
        // Each pass adds ln(0.6/0.5) = 0.1823; seventeen pass ln 19 (sixteen do not).
        let mut s = Sprt::new(0.5, 0.6, 0.05, 0.05);
        assert_eq!((0..16).map(|_| s.push(true)).last(), Some(SprtDecision::Continue));
        assert_eq!(s.push(true), SprtDecision::AcceptH1);
        assert!((s.llr() - 17.0 * 1.2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn cusum_accumulates_failures_and_forgets_passes() {
        // p0 = 0.7, p1 = 0.6: a failure adds ln(0.4/0.3) = 0.2877, a pass ln(0.6/0.7) = −0.1542.
        let mut c = Cusum::new(0.7, 0.6, 1.0);
        assert!(!c.push(true));
        assert_eq!(c.statistic(), 0.0, "never below zero");
        for _ in 0..3 {
            assert!(!c.push(false));
        }
        assert!((c.statistic() - 3.0 * (4.0f64 / 3.0).ln()).abs() < 1e-12);
        assert!(!c.push(true));
        assert!(c.push(false) || c.push(false), "five failures against one pass cross 1.0");
        assert!(c.push(true), "the alarm stays raised");
    }
}

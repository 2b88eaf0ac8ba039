//! Comparing pass rates: Fisher's exact test on one 2×2 table, the Cochran-Mantel-Haenszel test
//! across tables stratified by task (trials of one task are alike, trials of different tasks
//! are not), Wilson intervals, Newcombe's interval for a difference of two rates, and Holm's
//! correction when several tests are made at once.

use statrs::distribution::ContinuousCDF;
use statrs::function::factorial::ln_binomial;

use crate::{Alternative, normal};

/// One 2×2 table: passes and failures of group `a` (the baseline) and group `b` (the recent
/// window), for one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Table2 {
    pub a_pass: u64,
    pub a_fail: u64,
    pub b_pass: u64,
    pub b_fail: u64,
}

impl Table2 {
    fn total(&self) -> u64 {
        self.a_pass + self.a_fail + self.b_pass + self.b_fail
    }
}

/// The outcome of [`cmh`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cmh {
    /// The Mantel-Haenszel chi-square with continuity correction.
    pub statistic: f64,
    pub p_value: f64,
    /// The Mantel-Haenszel common odds ratio of passing, `a` against `b`.
    pub odds_ratio: f64,
}

/// Fisher's exact test of `table`; `Greater` asks whether `a` passes more often than `b`.
pub fn fisher_exact(table: &Table2, alternative: Alternative) -> f64 {
    let row_a = table.a_pass + table.a_fail;
    let col_pass = table.a_pass + table.b_pass;
    let n = table.total();
    // a_pass is hypergeometric given the margins.
    let lo = col_pass.saturating_sub(n - row_a);
    let hi = row_a.min(col_pass);
    let pmf = |k: u64| {
        (ln_binomial(row_a, k) + ln_binomial(n - row_a, col_pass - k) - ln_binomial(n, col_pass))
            .exp()
    };
    let sum = |range: std::ops::RangeInclusive<u64>| range.map(pmf).sum::<f64>().min(1.0);
    match alternative {
        Alternative::Greater => sum(table.a_pass..=hi),
        Alternative::Less => sum(lo..=table.a_pass),
        Alternative::TwoSided => {
            let observed = pmf(table.a_pass) * (1.0 + 1e-7);
            (lo..=hi).map(pmf).filter(|&p| p <= observed).sum::<f64>().min(1.0)
        }
    }
}

/// The Cochran-Mantel-Haenszel test over `strata` (as R's `mantelhaen.test` with its continuity
/// correction); `Greater` asks whether `a` passes more often than `b` across strata. Strata of
/// fewer than two trials carry no information and are skipped; `None` when none is left.
pub fn cmh(strata: &[Table2], alternative: Alternative) -> Option<Cmh> {
    let (mut delta, mut var, mut num, mut den) = (0.0, 0.0, 0.0, 0.0);
    for t in strata.iter().filter(|t| t.total() >= 2) {
        let n = t.total() as f64;
        let row_a = (t.a_pass + t.a_fail) as f64;
        let row_b = (t.b_pass + t.b_fail) as f64;
        let pass = (t.a_pass + t.b_pass) as f64;
        let fail = (t.a_fail + t.b_fail) as f64;
        delta += t.a_pass as f64 - row_a * pass / n;
        var += row_a * row_b * pass * fail / (n * n * (n - 1.0));
        num += (t.a_pass * t.b_fail) as f64 / n;
        den += (t.a_fail * t.b_pass) as f64 / n;
    }
    if var <= 0.0 {
        return None;
    }
    let yates = if delta.abs() >= 0.5 { 0.5 } else { 0.0 };
    let statistic = (delta.abs() - yates).powi(2) / var;
    let z = delta.signum() * statistic.sqrt();
    let p_value = match alternative {
        // With one degree of freedom the chi-square tail is the two normal tails.
        Alternative::TwoSided => 2.0 * normal().sf(z.abs()),
        Alternative::Greater => normal().sf(z),
        Alternative::Less => normal().cdf(z),
    };
    let odds_ratio = if den > 0.0 { num / den } else { f64::INFINITY };
    Some(Cmh { statistic, p_value, odds_ratio })
}

/// The Wilson score interval of `successes` out of `n` at `confidence` (e.g. 0.95).
pub fn wilson(successes: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = normal().inverse_cdf(0.5 + confidence / 2.0);
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let scale = 1.0 + z * z / n;
    ((centre - spread) / scale, (centre + spread) / scale)
}

/// Newcombe's hybrid score interval (his method 10) for `p_b − p_a`.
pub fn newcombe(
    a_successes: u64,
    a_n: u64,
    b_successes: u64,
    b_n: u64,
    confidence: f64,
) -> (f64, f64) {
    let rate = |s: u64, n: u64| if n == 0 { 0.0 } else { s as f64 / n as f64 };
    let (pa, pb) = (rate(a_successes, a_n), rate(b_successes, b_n));
    let (la, ua) = wilson(a_successes, a_n, confidence);
    let (lb, ub) = wilson(b_successes, b_n, confidence);
    let d = pb - pa;
    (
        d - ((pb - lb).powi(2) + (ua - pa).powi(2)).sqrt(),
        d + ((ub - pb).powi(2) + (pa - la).powi(2)).sqrt(),
    )
}

/// Holm's step-down adjustment of `p_values`, returned in the same order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, want: f64, tol: f64) -> bool {
        (x - want).abs() <= tol
    }

    fn table(a_pass: u64, a_fail: u64, b_pass: u64, b_fail: u64) -> Table2 {
        Table2 { a_pass, a_fail, b_pass, b_fail }
    }

    // Reference values: scipy.stats.fisher_exact([[a_pass, a_fail], [b_pass, b_fail]], …).
    #[test]
    fn fisher_matches_scipy() {
        let cases = [
            (table(8, 2, 1, 5), [0.034965034965034975, 0.9991258741258742, 0.024475524475524483]),
            (table(20, 5, 12, 13), [0.037758447311795694, 0.9964248169435169, 0.01887922365589785]),
            (table(3, 7, 9, 1), [0.019766611097880443, 0.009883305548940223, 0.9996427720885925]),
        ];
        for (t, [two, less, greater]) in cases {
            assert!(close(fisher_exact(&t, Alternative::TwoSided), two, 1e-12), "{t:?}");
            assert!(close(fisher_exact(&t, Alternative::Less), less, 1e-12), "{t:?}");
            assert!(close(fisher_exact(&t, Alternative::Greater), greater, 1e-12), "{t:?}");
        }
    }

    // The penicillin and rabbits data of R's `mantelhaen.test` documentation; reference values
    // from statsmodels' StratifiedTable: chi-square 3.9286, p = 0.04747, pooled odds ratio 7.
    #[test]
    fn cmh_matches_the_rabbits_example() {
        let strata = [
            table(0, 6, 0, 5),
            table(3, 3, 0, 6),
            table(6, 0, 2, 4),
            table(5, 1, 6, 0),
            table(2, 0, 5, 0),
        ];
        let r = cmh(&strata, Alternative::TwoSided).unwrap();
        assert!(close(r.statistic, 3.928571428571429, 1e-12), "{r:?}");
        assert!(close(r.p_value, 0.047472255142918196, 1e-9), "{r:?}");
        assert!(close(r.odds_ratio, 7.0, 1e-12), "{r:?}");
        let greater = cmh(&strata, Alternative::Greater).unwrap();
        assert!(close(greater.p_value, 0.047472255142918196 / 2.0, 1e-9), "{greater:?}");
        let less = cmh(&strata, Alternative::Less).unwrap();
        assert!(close(less.p_value, 1.0 - 0.047472255142918196 / 2.0, 1e-9), "{less:?}");
        assert_eq!(cmh(&[table(1, 0, 0, 0)], Alternative::Greater), None);
    }

    // Reference values: statsmodels' proportion_confint(81, 263, method="wilson"), and
    // Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 against 48/80, method
    // 10 gives 0.0524 to 0.3339 (statsmodels' confint_proportions_2indep, method="newcomb",
    // agrees: 0.052431472402365, 0.333872654036906).
    #[test]
    fn wilson_and_newcombe_match_published_values() {
        let (lo, hi) = wilson(81, 263, 0.95);
        assert!(close(lo, 0.2552885198782742, 1e-9) && close(hi, 0.36620957698280004, 1e-9));
        let (lo, hi) = newcombe(48, 80, 56, 70, 0.95);
        assert!(close(lo, 0.052431472402365, 1e-9) && close(hi, 0.333872654036906, 1e-9));
        assert_eq!(wilson(0, 0, 0.95), (0.0, 1.0));
    }

    // Reference values: statsmodels.stats.multitest.multipletests(…, method="holm").
    #[test]
    fn holm_matches_statsmodels() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (got, want) in adjusted.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!(close(*got, want, 1e-15), "{adjusted:?}");
        }
        assert_eq!(holm(&[]), Vec::<f64>::new());
    }
}

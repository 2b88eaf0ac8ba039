//! Comparing two samples of measurements by ranks: the Mann-Whitney U test (normal
//! approximation with tie and continuity corrections, as scipy's `method="asymptotic"`), and the
//! Hodges-Lehmann estimate of the shift between them with its confidence interval.

use statrs::distribution::ContinuousCDF;

use crate::{Alternative, normal};

/// The outcome of [`mann_whitney`].
#[derive(Clone, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: the number of pairs in which its value is larger (ties count half).
    pub u: f64,
    pub z: f64,
    pub p_value: f64,
    pub median_a: f64,
    pub median_b: f64,
    /// Hodges-Lehmann estimate of the shift `b − a`: the median of all pairwise differences.
    pub shift: f64,
    /// 95% confidence interval of the shift.
    pub shift_ci: (f64, f64),
}

/// The median of `xs` (the mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Tests whether `a` tends to be smaller, larger or different from `b`. `None` when either
/// sample is empty.
pub fn mann_whitney(a: &[f64], b: &[f64], alternative: Alternative) -> Option<MannWhitney> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (ranks, tie_term) = ranks(a.iter().chain(b).copied().collect());
    let r1: f64 = ranks[..a.len()].iter().sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let u2 = n1 * n2 - u1;
    let n = n1 + n2;
    let mu = n1 * n2 / 2.0;
    let sigma = (n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let z = if sigma > 0.0 { (u - mu - 0.5) / sigma } else { 0.0 };
    let p_value = (factor * normal().sf(z)).min(1.0);
    let (shift, shift_ci) = hodges_lehmann(a, b);
    Some(MannWhitney {
        u: u1,
        z,
        p_value,
        median_a: median(a),
        median_b: median(b),
        shift,
        shift_ci,
    })
}

/// Mid-ranks (1-based) of `values`, and Σ(t³ − t) over groups of t tied values.
fn ranks(values: Vec<f64>) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        order[start..=end].iter().for_each(|&i| ranks[i] = rank);
        let t = (end - start + 1) as f64;
        tie_term += t * t * t - t;
        start = end + 1;
    }
    (ranks, tie_term)
}

/// The median of all differences `b_j − a_i`, and its 95% interval from the normal
/// approximation to the distribution of U (the interval R's `wilcox.test` reports, without
/// its tie correction).
fn hodges_lehmann(a: &[f64], b: &[f64]) -> (f64, (f64, f64)) {
    let mut diffs: Vec<f64> = b.iter().flat_map(|y| a.iter().map(move |x| y - x)).collect();
    diffs.sort_by(f64::total_cmp);
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let m = diffs.len();
    let z = normal().inverse_cdf(0.975);
    let c = (n1 * n2 / 2.0 - z * (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt()).floor();
    let k = (c.max(1.0) as usize).min(m);
    (median(&diffs), (diffs[k - 1], diffs[m - k]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, want: f64) -> bool {
        (x - want).abs() <= 1e-9 * want.abs().max(1e-300)
    }

    // Reference values: scipy.stats.mannwhitneyu(a, b, alternative=…, method="asymptotic").
    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is a measurement here, not π.
    fn matches_scipy_with_ties() {
        let a = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let b = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
        let two = mann_whitney(&a, &b, Alternative::TwoSided).unwrap();
        assert_eq!(two.u, 58.0);
        assert!(close(two.p_value, 0.13291945818531892), "{}", two.p_value);
        let greater = mann_whitney(&a, &b, Alternative::Greater).unwrap();
        assert!(close(greater.p_value, 0.06645972909265946), "{}", greater.p_value);
        let less = mann_whitney(&a, &b, Alternative::Less).unwrap();
        assert!(close(less.p_value, 0.9442044002897128), "{}", less.p_value);
    }

    #[test]
    fn matches_scipy_on_a_clear_difference() {
        let x = [12.0, 15.0, 11.0, 18.0, 14.0, 16.0, 13.0, 17.0, 19.0, 15.0, 14.0, 16.0];
        let y = [10.0, 11.0, 9.0, 12.0, 13.0, 10.0, 11.0, 12.0, 9.0, 10.0, 14.0, 11.0];
        let r = mann_whitney(&x, &y, Alternative::Greater).unwrap();
        assert_eq!(r.u, 133.0);
        assert!(close(r.p_value, 0.0002216380013104319), "{}", r.p_value);
        let r = mann_whitney(&x, &y, Alternative::TwoSided).unwrap();
        assert!(close(r.p_value, 0.0004432760026208638), "{}", r.p_value);
    }

    #[test]
    fn shift_and_interval_of_a_constant_offset() {
        let a: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i)).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 30.0).collect();
        let r = mann_whitney(&a, &b, Alternative::Greater).unwrap();
        assert_eq!(r.shift, -30.0);
        assert!(r.shift_ci.0 < -30.0 && -30.0 < r.shift_ci.1, "{:?}", r.shift_ci);
        assert!(r.shift_ci.1 < 0.0, "the whole interval is a speed-up: {:?}", r.shift_ci);
        assert_eq!((r.median_a, r.median_b), (109.5, 79.5));
        assert!(r.p_value < 1e-6);
    }

    #[test]
    fn identical_samples_and_empty_ones() {
        let r = mann_whitney(&[1.0, 1.0], &[1.0, 1.0], Alternative::TwoSided).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert_eq!(mann_whitney(&[], &[1.0], Alternative::Less), None);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}

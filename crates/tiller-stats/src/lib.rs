//! The statistics behind tiller's verdicts, each a few dozen lines checked against published
//! reference values (scipy and statsmodels): whether one set of timings is faster than another
//! ([`mann_whitney`]), whether a model passes tasks less often than it did ([`cmh`] stratified
//! by task, [`fisher_exact`] pooled), how large a difference in pass rates is ([`newcombe`]),
//! correcting for testing several metrics ([`holm`]), and watching a stream of trials
//! ([`Sprt`], [`Cusum`]). Distributions come from `statrs`.

mod proportions;
mod ranks;
mod sequential;

pub use proportions::{Cmh, Table2, cmh, fisher_exact, holm, newcombe, wilson};
pub use ranks::{MannWhitney, mann_whitney, median};
pub use sequential::{Cusum, Sprt, SprtDecision};

/// Which way a one-sided test looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    TwoSided,
    /// The first sample (or group) tends to be smaller than the second.
    Less,
    /// The first sample (or group) tends to be larger than the second; for pass tables, the
    /// first group passes more often.
    Greater,
}

/// The standard normal distribution.
fn normal() -> statrs::distribution::Normal {
    // Mean 0 and standard deviation 1 are valid parameters.
    statrs::distribution::Normal::standard()
}

//! The drift probe: does the model behind an endpoint still do what it did last week?
//!
//! A [`Suite`] of small programming tasks is sent to a model several times per task
//! ([`run::run`]); each answer is graded offline by running the task's tests in the sandbox
//! ([`Grader`]) and stored in the ledger as a `ProbeTrial`. [`compare`] sets two windows of
//! trials side by side (pass rate by a stratified test, speed by rank tests) and gives a verdict;
//! [`report`] draws pass rate and speed over time; [`eval`] has the whole agent fix scratch
//! repositories ([`RepoTask`]: the `bugfix` suite's, or answered tasks made into one).
//! docs/probe.md has the statistics and the window sizes.

mod error;
mod grade;
mod repo;
mod suite;
mod window;

pub mod compare;
pub mod eval;
pub mod report;
pub mod run;

pub use error::ProbeError;
pub use grade::{Grade, Graded, Grader, extract_code};
pub use repo::{Edit, RepoTask};
pub use suite::{Language, Suite, SuiteTask, Task};
pub use window::{Window, select};

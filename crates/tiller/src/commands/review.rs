//! `tiller review [RANGE]`: the holdability report of a git range, the same one the front end
//! shows for each step: lines added and removed per file, added code that repeats code elsewhere,
//! and the longest function touched.

use std::path::Path;

use tiller_review::{ReviewError, report_range};

use crate::cli::{ModelArgs, ReviewArgs};
use crate::command_error::{CommandError, Kind};

pub fn run(model: &ModelArgs, args: &ReviewArgs) -> Result<(), CommandError> {
    let repo = model.workspace.as_deref().unwrap_or(Path::new("."));
    let report = report_range(repo, args.range.as_deref().unwrap_or(""))?;
    if args.json {
        outln!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(());
    }
    outln!("{}", report.render());
    for file in &report.files {
        let (added, removed) = (format!("+{}", file.added), format!("−{}", file.removed));
        outln!("  {added:>6} {removed:>6}  {}", file.path);
    }
    Ok(())
}

impl From<ReviewError> for CommandError {
    fn from(e: ReviewError) -> Self {
        let message = e.to_string();
        match e {
            ReviewError::NotARepo { .. } => CommandError::new(Kind::User, message)
                .with_hint("run it in a git repository, or name one with -C DIR"),
            ReviewError::BadRange { .. } => CommandError::new(Kind::User, message)
                .with_hint("give a range such as HEAD~3.. or main..HEAD, or one commit"),
            ReviewError::Git(_) | ReviewError::Io { .. } => {
                CommandError::new(Kind::Internal, message)
            }
        }
    }
}

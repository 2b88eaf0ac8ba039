//! The patch format the model edits files with (docs/patch-format.md): parsing, and applying
//! hunks to text.

/// A parsed patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub ops: Vec<PatchOp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchOp {}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Syntax(String),
}

pub fn parse_patch(_text: &str) -> Result<Patch, PatchError> {
    Err(PatchError::Syntax("not built yet".into()))
}

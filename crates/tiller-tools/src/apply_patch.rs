//! The `apply_patch` tool.

use tiller_types::ToolSpec;

use crate::{Outcome, Tool, ToolError, ToolKind, Workspace};

pub struct ApplyPatch;

impl Tool for ApplyPatch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "apply_patch".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Edit
    }

    fn run(&self, _ws: &Workspace, _args: serde_json::Value) -> Result<Outcome, ToolError> {
        Err(ToolError::Other("not built yet".into()))
    }
}

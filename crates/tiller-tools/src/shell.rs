//! The `shell` tool.

use tiller_types::ToolSpec;

use crate::{Outcome, Tool, ToolError, ToolKind, Workspace};

#[derive(Default)]
pub struct Shell;

impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "shell".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Exec
    }

    fn run(&self, _ws: &Workspace, _args: serde_json::Value) -> Result<Outcome, ToolError> {
        Err(ToolError::Other("not built yet".into()))
    }
}

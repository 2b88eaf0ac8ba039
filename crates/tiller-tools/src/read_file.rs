//! The `read_file` tool.

use tiller_types::ToolSpec;

use crate::{Outcome, Tool, ToolError, ToolKind, Workspace};

pub struct ReadFile;

impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    fn run(&self, _ws: &Workspace, _args: serde_json::Value) -> Result<Outcome, ToolError> {
        Err(ToolError::Other("not built yet".into()))
    }
}

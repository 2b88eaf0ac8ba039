//! The `replace` tool: the simplest edit, for models that cannot write a patch. `old` is text
//! that is in the file exactly once, `new` what it becomes. On the embedded engine `old` is held
//! by the grammar to lines of the file (see [`LINES_KEY`]), so the edit always applies.

use serde::Deserialize;
use tiller_types::{ChangeKind, ChangeSet, ToolSpec};

use crate::files::edit_distance;
use crate::{
    LINES_KEY, PATH_KEY, Tool, ToolError, ToolKind, ToolOutput, Workspace, diff_file, parse_args,
};

/// Replaces one piece of text in a file.
pub struct Replace;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
    old: String,
    new: String,
    /// Read by front ends from the call's arguments, for the commit.
    #[serde(default, rename = "message")]
    _message: Option<String>,
}

impl Tool for Replace {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "replace".into(),
            description: "Edit a file: replace `old`, text copied exactly from the file (one or \
                          more whole lines, found once), with `new`."
                .into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", (PATH_KEY): "file", "description": "File path, relative to the workspace root."},
                    "old": {"type": "string", (LINES_KEY): "path", "description": "The text to replace, copied exactly from the file."},
                    "new": {"type": "string", "description": "The text to put in its place."},
                    "message": crate::commit_message_schema()
                },
                "required": ["path", "old", "new"],
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Edit
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(args)?;
        let path = ws.relative(&ws.resolve_write(&args.path)?);
        let text =
            ws.read_text(&path)?.ok_or_else(|| ToolError::path(&args.path, "does not exist"))?;
        if args.old.is_empty() {
            return Err(ToolError::Arguments("`old` is empty: copy the text to replace".into()));
        }
        let new = keep_indent(&args.old, &args.new);
        match text.matches(args.old.as_str()).count() {
            0 => Err(ToolError::Arguments(not_found(&path, &text, &args.old))),
            1 if args.old == new => {
                Err(ToolError::Arguments("`new` is the same as `old`: nothing to change".into()))
            }
            1 => {
                let changed = text.replacen(args.old.as_str(), &new, 1);
                let change = diff_file(&path, ChangeKind::Update, Some(text), Some(changed));
                Ok(ToolOutput::Change(ChangeSet { files: vec![change] }))
            }
            n => Err(ToolError::Arguments(format!(
                "`old` occurs {n} times in {path}; include the lines around it so that it is found once"
            ))),
        }
    }
}

/// `new` with the indentation of `old` when both are one line and only `old` is indented: a
/// small model often drops the indentation, which in Python would break the file.
fn keep_indent(old: &str, new: &str) -> String {
    let indent = &old[..old.len() - old.trim_start().len()];
    let one_line = |s: &str| !s.trim_end_matches('\n').contains('\n');
    if one_line(old) && one_line(new) && !new.is_empty() && !new.starts_with(char::is_whitespace) {
        format!("{indent}{new}")
    } else {
        new.to_string()
    }
}

/// Why `old` was not found, with the file's line that comes closest.
fn not_found(path: &str, text: &str, old: &str) -> String {
    let first = old.lines().find(|l| !l.trim().is_empty()).unwrap_or(old);
    let closest = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .min_by_key(|(_, l)| edit_distance(l.trim(), first.trim()));
    match closest {
        Some((n, line)) => format!(
            "`old` is not in {path}. The closest line is {}: {line:?}. Copy the text exactly, \
             or read the file first.",
            n + 1
        ),
        None => format!("`old` is not in {path}: the file is empty"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::temp_workspace as ws;
    use serde_json::json;

    fn replace(ws: &Workspace, old: &str, new: &str) -> Result<String, ToolError> {
        match Replace.run(ws, json!({"path": "greet.py", "old": old, "new": new}))? {
            ToolOutput::Change(set) => Ok(set.files[0].new.clone().unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Refused before any change is proposed, as `write_file` and `apply_patch` refuse them.
    #[test]
    fn refuses_git_metadata_and_tiller_config() {
        let (_dir, ws, refused) = crate::workspace::repo_workspace();
        for (path, why) in refused {
            let args = json!({"path": path, "old": "[core]", "new": "[core]\n\tfsmonitor = x"});
            let err = Replace.run(&ws, args).unwrap_err().to_string();
            assert!(err.starts_with(path) && err.contains(why), "{path}: {err}");
        }
    }

    #[test]
    fn replaces_text_found_once_keeping_the_line_indent() {
        let (_d, ws) = ws();
        let text = "def greet(name):\n    return \"Hello\"\n";
        std::fs::write(ws.root().join("greet.py"), text).unwrap();
        assert_eq!(
            replace(&ws, "    return \"Hello\"", "return f\"Hello, {name}!\"").unwrap(),
            "def greet(name):\n    return f\"Hello, {name}!\"\n"
        );
        assert_eq!(
            replace(&ws, "\"Hello\"", "\"Hi\"").unwrap(),
            "def greet(name):\n    return \"Hi\"\n"
        );
        let err = replace(&ws, "return 'Hello'", "x").unwrap_err().to_string();
        assert!(err.contains("The closest line is 2: \"    return \\\"Hello\\\"\""), "{err}");
        std::fs::write(ws.root().join("greet.py"), "a\na\n").unwrap();
        assert!(replace(&ws, "a", "b").unwrap_err().to_string().contains("occurs 2 times"));
        assert!(replace(&ws, "a\na", "a\na").unwrap_err().to_string().contains("nothing"));
        assert!(replace(&ws, "", "b").is_err());
    }
}

//! The `write_file` tool: proposes a file's whole new content as a reviewable change. Nothing is
//! written here; the agent applies the change once it is accepted.

use serde::Deserialize;
use tiller_types::{ChangeKind, ChangeSet, ToolSpec};

use crate::{Tool, ToolError, ToolKind, ToolOutput, Workspace, diff_file, parse_args};

/// Creates a file or replaces its content.
pub struct WriteFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
    content: String,
    /// Read by front ends from the call's arguments, for the commit.
    #[serde(default, rename = "message")]
    _message: Option<String>,
}

impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Create a file, or replace a file's whole content. Parent directories \
                          are created. For small edits to an existing file, prefer apply_patch."
                .into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", (crate::PATH_KEY): "new", "description": "File path, relative to the workspace root."},
                    "content": {"type": "string", "description": "The complete new content of the file."},
                    "message": crate::commit_message_schema()
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Edit
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(args)?;
        if args.path.ends_with('/') {
            return Err(ToolError::path(&args.path, "ends with `/`: name a file, not a directory"));
        }
        let path = ws.relative(&ws.resolve_write(&args.path)?);
        let old = ws.read_text(&path)?;
        if old.as_deref() == Some(args.content.as_str()) {
            return Ok(ToolOutput::from(format!(
                "{path}: unchanged (the file already has this content)"
            )));
        }
        let kind = match old {
            Some(_) => ChangeKind::Update,
            None => ChangeKind::Add,
        };
        let change = diff_file(&path, kind, old, Some(args.content));
        Ok(ToolOutput::Change(ChangeSet { files: vec![change] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Observation;
    use crate::workspace::temp_workspace as ws;

    fn write(ws: &Workspace, path: &str, content: &str) -> Result<ToolOutput, ToolError> {
        WriteFile.run(ws, serde_json::json!({"path": path, "content": content}))
    }

    #[test]
    fn refuses_git_metadata_and_tiller_config() {
        let (dir, ws, refused) = crate::workspace::repo_workspace();
        for (path, why) in refused {
            let err = write(&ws, path, "[core]\n\thooksPath = /tmp\n").unwrap_err().to_string();
            assert!(err.starts_with(path) && err.contains(why), "{path}: {err}");
        }
        assert_eq!(std::fs::read_to_string(dir.path().join(".git/config")).unwrap(), "[core]\n");
        assert!(!dir.path().join(".git/hooks/post-commit").exists());
        assert!(!dir.path().join("sub/.git/x").exists());
    }

    #[test]
    fn new_file_is_an_add_and_nothing_is_written() {
        let (dir, ws) = ws();
        let ToolOutput::Change(set) = write(&ws, "./sub/new.txt", "hi\n").unwrap() else {
            panic!("expected a change");
        };
        let file = &set.files[0];
        assert_eq!(set.files.len(), 1);
        assert_eq!(file.path, "sub/new.txt");
        assert_eq!(file.kind, ChangeKind::Add);
        assert_eq!((file.old.as_deref(), file.new.as_deref()), (None, Some("hi\n")));
        assert!(!dir.path().join("sub").exists());
    }

    #[test]
    fn existing_file_is_an_update_with_hunks() {
        let (dir, ws) = ws();
        std::fs::write(dir.path().join("a.txt"), "1\n2\n3\n").unwrap();
        let ToolOutput::Change(set) = write(&ws, "a.txt", "1\nTWO\n3\n").unwrap() else {
            panic!("expected a change");
        };
        let file = &set.files[0];
        assert_eq!(file.kind, ChangeKind::Update);
        assert_eq!(file.hunks.len(), 1);
        assert_eq!(file.hunks[0].removed, vec!["2\n"]);
        assert_eq!(file.hunks[0].added, vec!["TWO\n"]);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "1\n2\n3\n");
    }

    #[test]
    fn unchanged_content_is_only_reported() {
        let (dir, ws) = ws();
        std::fs::write(dir.path().join("a.txt"), "same\n").unwrap();
        let ToolOutput::Text(Observation { text, .. }) = write(&ws, "a.txt", "same\n").unwrap()
        else {
            panic!("expected text");
        };
        assert!(text.contains("unchanged"), "{text}");
    }

    #[test]
    fn directories_binaries_and_escapes_are_refused() {
        let (dir, ws) = ws();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("b.bin"), b"\0\x01").unwrap();
        let err = |p: &str| write(&ws, p, "x").unwrap_err().to_string();
        assert!(err("d").contains("directory"));
        assert!(err(".").contains("directory"));
        assert!(err("b.bin").contains("binary"));
        assert!(err("../x").contains("outside"));
        // A path for a directory is no file name, even where nothing exists yet.
        assert!(err("new/").contains("ends with `/`"));
        assert!(err("d/").contains("ends with `/`"));
        assert!(!dir.path().join("new").exists());
        // A file too large to take in whole is not replaced blind.
        std::fs::write(dir.path().join("big"), "x\n".repeat(9 << 20)).unwrap();
        assert!(err("big").contains("larger than 16 MiB"), "{}", err("big"));
        assert!(
            WriteFile
                .run(&ws, serde_json::json!({"path": "a"}))
                .unwrap_err()
                .to_string()
                .contains("content")
        );
    }
}

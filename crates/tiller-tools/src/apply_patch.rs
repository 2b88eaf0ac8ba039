//! The `apply_patch` tool: reads a patch (docs/patch-format.md), checks it against the workspace
//! and proposes the result as a reviewable change set. Nothing is written here.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use tiller_types::{ChangeKind, ChangeSet, FileChange, ToolSpec};

use crate::{
    PatchOp, Tool, ToolError, ToolKind, ToolOutput, Workspace, apply_chunks, diff_file, parse_args,
    parse_patch,
};

/// Adds, updates, moves and deletes files as one patch.
pub struct ApplyPatch;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    patch: String,
    /// Read by front ends from the call's arguments, for the commit.
    #[serde(default, rename = "message")]
    _message: Option<String>,
}

const DESCRIPTION: &str = "\
Edit files with a patch: add, update, rename or delete several files at once. Example:
*** Begin Patch
*** Add File: docs/todo.md
+# To do
+- write tests
*** Update File: src/app.py
*** Move to: src/main.py
@@ def greet(name):
-    print(\"hi\")
+    print(f\"hello {name}\")
     return name
*** Delete File: old.txt
*** End Patch
Every line of an added file starts with '+'. An update is made of chunks in file order. A chunk \
is lines starting with ' ' (context, unchanged), '-' (removed) or '+' (added); give about 3 \
context lines before and after each change, copied exactly. Start each chunk with `@@`, \
optionally followed by a line that comes shortly before the chunk (such as `@@ class Foo` or \
`@@ def bar():`) when the context alone is not unique. `*** Move to:` (optional, right after \
`*** Update File:`) renames the file. `*** End of File` after a chunk says it ends the file. \
Paths are relative to the workspace root; files to update or delete must exist and files to add \
must not.";

impl Tool for ApplyPatch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "apply_patch".into(),
            description: DESCRIPTION.into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "patch": {
                        "type": "string",
                        "description": "The whole patch, from `*** Begin Patch` to `*** End Patch`."
                    },
                    "message": crate::commit_message_schema()
                },
                "required": ["patch"],
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Edit
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let Args { patch, .. } = parse_args(args)?;
        let patch = parse_patch(&patch)?;
        let mut claimed = HashSet::new();
        let mut files = Vec::with_capacity(patch.ops.len());
        for op in &patch.ops {
            let change = change_of(ws, op, &mut claimed)?;
            // An update that changes nothing is no change to review.
            if change.kind != ChangeKind::Update || change.old != change.new {
                files.push(change);
            }
        }
        if files.is_empty() {
            let text = "the patch changes nothing: every file already has the content it gives";
            return Ok(ToolOutput::from(text.to_string()));
        }
        Ok(ToolOutput::Change(ChangeSet { files }))
    }
}

/// The change `op` makes, checked against the workspace. `claimed` holds the files changed by
/// earlier operations, so that two names for one file are refused.
fn change_of(
    ws: &Workspace,
    op: &PatchOp,
    claimed: &mut HashSet<PathBuf>,
) -> Result<FileChange, ToolError> {
    let path = claim(ws, op.path(), claimed)?;
    let existing = || {
        ws.read_text(&path)?.ok_or_else(|| {
            ToolError::path(&path, "does not exist (use `*** Add File:` to create a file)")
        })
    };
    Ok(match op {
        PatchOp::Add { content, .. } => {
            if ws.read_text(&path)?.is_some() {
                return Err(ToolError::path(
                    &path,
                    "already exists (use `*** Update File:` to change it)",
                ));
            }
            diff_file(&path, ChangeKind::Add, None, Some(content.clone()))
        }
        PatchOp::Delete { .. } => diff_file(&path, ChangeKind::Delete, Some(existing()?), None),
        PatchOp::Update { move_to, chunks, .. } => {
            let old = existing()?;
            let new = apply_chunks(&path, &old, chunks)?;
            let kind = match move_to {
                None => ChangeKind::Update,
                Some(to) => {
                    let to = claim(ws, to, claimed)?;
                    if ws.resolve(&to)?.exists() {
                        return Err(ToolError::path(
                            to,
                            "already exists: cannot move a file there",
                        ));
                    }
                    ChangeKind::Move { to }
                }
            };
            diff_file(&path, kind, Some(old), Some(new))
        }
    })
}

/// The workspace-relative form of `path`, refused if it leaves the workspace or was claimed.
fn claim(ws: &Workspace, path: &str, claimed: &mut HashSet<PathBuf>) -> Result<String, ToolError> {
    let abs = ws.resolve_write(path)?;
    let relative = ws.relative(&abs);
    if !claimed.insert(abs) {
        return Err(ToolError::path(
            relative,
            "is changed twice by this patch: put all its changes under one `*** Update File:`",
        ));
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use tiller_types::Hunk;

    use super::*;
    use crate::apply_changes;
    use crate::workspace::temp_workspace as ws;

    fn run(ws: &Workspace, ops: &str) -> Result<ToolOutput, ToolError> {
        let patch = format!("*** Begin Patch\n{ops}\n*** End Patch\n");
        ApplyPatch.run(ws, serde_json::json!({ "patch": patch }))
    }

    fn change_set(ws: &Workspace, ops: &str) -> ChangeSet {
        match run(ws, ops).unwrap() {
            ToolOutput::Change(set) => set,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn refuses_git_metadata_and_tiller_config() {
        let (dir, ws, refused) = crate::workspace::repo_workspace();
        ws.write_atomic("a.txt", "a\n").unwrap();
        for (path, why) in refused {
            let ops = [
                format!("*** Add File: {path}\n+x"),
                format!("*** Update File: {path}\n@@\n-[core]\n+[core]\n+\tfsmonitor = x"),
                format!("*** Delete File: {path}"),
                format!("*** Update File: a.txt\n*** Move to: {path}\n@@\n-a\n+b"),
            ];
            for op in ops {
                let err = run(&ws, &op).unwrap_err().to_string();
                assert!(err.starts_with(path) && err.contains(why), "{op}: {err}");
            }
        }
        assert_eq!(std::fs::read_to_string(dir.path().join(".git/config")).unwrap(), "[core]\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "a\n");
        assert!(!dir.path().join(".git/hooks/post-commit").exists());
    }

    #[test]
    fn proposes_every_kind_of_change_and_writes_nothing() {
        let (_d, ws) = ws();
        ws.write_atomic("src/lib.rs", "fn a() {}\nfn b() {}\n").unwrap();
        ws.write_atomic("old.txt", "bye\n").unwrap();
        ws.write_atomic("name.txt", "n\n").unwrap();
        let set = change_set(
            &ws,
            "*** Add File: docs/new.md\n+# New\n\
             *** Update File: ./src/lib.rs\n fn a() {}\n-fn b() {}\n+fn c() {}\n\
             *** Delete File: old.txt\n\
             *** Update File: name.txt\n*** Move to: renamed.txt",
        );
        let kinds: Vec<(&str, &ChangeKind)> =
            set.files.iter().map(|f| (f.path.as_str(), &f.kind)).collect();
        let to = "renamed.txt".to_string();
        assert_eq!(
            kinds,
            [
                ("docs/new.md", &ChangeKind::Add),
                ("src/lib.rs", &ChangeKind::Update),
                ("old.txt", &ChangeKind::Delete),
                ("name.txt", &ChangeKind::Move { to }),
            ]
        );
        assert_eq!(set.files[0].new.as_deref(), Some("# New\n"));
        assert_eq!(
            set.files[1].hunks,
            [Hunk {
                old_start: 1,
                removed: vec!["fn b() {}\n".into()],
                added: vec!["fn c() {}\n".into()]
            }]
        );
        assert_eq!(set.files[2].new, None);
        assert_eq!(ws.read_text("old.txt").unwrap().as_deref(), Some("bye\n"));
        assert_eq!(ws.read_text("docs/new.md").unwrap(), None);

        apply_changes(&ws, &set, &set.accept_all()).unwrap();
        assert_eq!(ws.read_text("src/lib.rs").unwrap().as_deref(), Some("fn a() {}\nfn c() {}\n"));
        assert_eq!(ws.read_text("renamed.txt").unwrap().as_deref(), Some("n\n"));
        assert_eq!(ws.read_text("old.txt").unwrap(), None);
    }

    #[test]
    fn refuses_what_the_workspace_contradicts() {
        let (_d, ws) = ws();
        ws.write_atomic("a.txt", "a\n").unwrap();
        ws.write_atomic("b.txt", "b\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.root().join("out")).unwrap();
        let cases = [
            ("*** Update File: missing.txt\n-a", "missing.txt: does not exist"),
            ("*** Delete File: missing.txt", "missing.txt: does not exist"),
            ("*** Add File: a.txt\n+x", "a.txt: already exists"),
            ("*** Update File: a.txt\n*** Move to: b.txt", "b.txt: already exists"),
            ("*** Add File: ../escape.txt\n+x", "is outside the workspace"),
            ("*** Add File: out/x.txt\n+x", "through a symlink"),
            ("*** Update File: a.txt\n-zzz", "a.txt: chunk 1 does not match"),
            ("*** Delete File: a.txt\n*** Delete File: ./a.txt", "a.txt: is changed twice"),
            ("*** Update File: a.txt\n", "patch line 4: expected"),
        ];
        for (ops, message) in cases {
            let err = run(&ws, ops).unwrap_err().to_string();
            assert!(err.contains(message), "{ops}: {err}");
        }
        assert!(!outside.path().join("x.txt").exists());
        let err = ApplyPatch.run(&ws, serde_json::json!({ "diff": "x" })).unwrap_err();
        assert!(matches!(err, ToolError::Arguments(_)), "{err}");
    }

    #[test]
    fn a_patch_that_changes_nothing_says_so() {
        let (_d, ws) = ws();
        ws.write_atomic("a.txt", "a\nb\n").unwrap();
        let outcome = run(&ws, "*** Update File: a.txt\n a\n-b\n+b").unwrap();
        assert!(matches!(outcome, ToolOutput::Text(o) if o.text.contains("changes nothing")));
    }

    #[test]
    fn spec_describes_the_format() {
        let spec = ApplyPatch.spec();
        assert_eq!(spec.name, "apply_patch");
        let markers = ["*** Begin Patch", "*** End Patch", "*** Move to:", "*** End of File"];
        for marker in markers {
            assert!(spec.description.contains(marker), "{marker}");
        }
        assert_eq!(spec.parameters["required"], serde_json::json!(["patch"]));
        assert_eq!(ApplyPatch.kind(), ToolKind::Edit);
    }
}

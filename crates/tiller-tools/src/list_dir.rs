//! The `list_dir` tool: a gitignore-aware, sorted tree of a directory, and the walker that
//! `search` shares with it.
//!
//! Ignore rules (`.gitignore`, `.ignore`, git's excludes) apply even outside a git repository.
//! Hidden files are shown, since `.github/` or `.env.example` often matter to the task; only
//! `.git/` itself is skipped. The output is an indented tree, two spaces a level, directories
//! with a trailing `/`: fewer tokens than full paths. A name that could be misread (a newline
//! or other control character, blanks at an end, a leading quote) is shown quoted, with escapes.

use std::path::Path;

use ignore::WalkBuilder;
use serde::Deserialize;
use tiller_types::ToolSpec;

use crate::{Tool, ToolError, ToolKind, ToolOutput, Workspace, parse_args};

/// Most entries shown by one call.
const MAX_ENTRIES: usize = 500;
/// Deepest level one call may ask for.
const MAX_DEPTH: usize = 6;

/// Lists a directory as a tree.
pub struct ListDir;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_depth")]
    depth: usize,
}

fn default_path() -> String {
    ".".into()
}

fn default_depth() -> usize {
    2
}

/// A walker over `root` with the ignore policy every tool shares: ignore files respected with or
/// without git, hidden files included, `.git/` skipped, entries sorted by name.
pub(crate) fn walker(root: &Path) -> WalkBuilder {
    let mut walk = WalkBuilder::new(root);
    walk.hidden(false)
        .require_git(false)
        .filter_entry(|e| !e.file_name().eq_ignore_ascii_case(".git"))
        .sort_by_file_name(|a, b| a.cmp(b));
    walk
}

impl Tool for ListDir {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_dir".into(),
            description: format!(
                "List a directory as an indented tree (directories end with /). Skips \
                 gitignored files and .git/. Defaults: path \".\", depth 2 (max {MAX_DEPTH}). \
                 Shows at most {MAX_ENTRIES} entries."
            ),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", (crate::PATH_KEY): "dir", "description": "Directory, relative to the workspace root. Default \".\"."},
                    "depth": {"type": "integer", "minimum": 1, "maximum": MAX_DEPTH, "description": "Levels to descend; 1 lists only direct children. Default 2."}
                },
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(args)?;
        let root = ws.resolve(&args.path)?;
        if !root.exists() {
            return Err(ToolError::path(&args.path, "does not exist"));
        }
        if !root.is_dir() {
            return Err(ToolError::path(&args.path, "is not a directory; use read_file"));
        }
        let depth = args.depth.clamp(1, MAX_DEPTH);
        let mut out = String::new();
        let (mut shown, mut total) = (0, 0);
        // Unreadable entries (permissions, races) are skipped: a listing is best-effort.
        for entry in walker(&root).max_depth(Some(depth)).build().flatten() {
            if entry.depth() == 0 {
                continue;
            }
            total += 1;
            if shown == MAX_ENTRIES {
                continue;
            }
            shown += 1;
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let indent = "  ".repeat(entry.depth() - 1);
            let name = entry.file_name().to_string_lossy();
            let slash = if is_dir { "/" } else { "" };
            out.push_str(&format!("{indent}{}{slash}\n", quoted(&name)));
        }
        if total == 0 {
            return Ok(ToolOutput::from(format!("{}: empty directory", args.path)));
        }
        if total > shown {
            out.push_str(&format!(
                "({} more entries left out; list a subdirectory or lower depth)\n",
                total - shown
            ));
        }
        Ok(ToolOutput::from(out))
    }
}

/// `name` as it can be shown on one line of the tree.
fn quoted(name: &str) -> std::borrow::Cow<'_, str> {
    let plain =
        !name.chars().any(char::is_control) && name.trim() == name && !name.starts_with('"');
    if plain { name.into() } else { format!("{name:?}").into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::temp_workspace as ws;

    fn list(ws: &Workspace, args: serde_json::Value) -> String {
        match ListDir.run(ws, args).unwrap() {
            ToolOutput::Text(o) => o.text,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn touch(ws: &Workspace, path: &str) {
        let abs = ws.root().join(path);
        std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
        std::fs::write(abs, "x").unwrap();
    }

    #[test]
    fn tree_is_sorted_and_respects_gitignore_without_git() {
        let (_d, ws) = ws();
        for p in ["b.txt", "a/z.rs", "a/y/deep.rs", "target/out.bin", ".env.example", ".git/HEAD"] {
            touch(&ws, p);
        }
        std::fs::write(ws.root().join(".gitignore"), "target/\n").unwrap();
        let out = list(&ws, serde_json::json!({}));
        assert_eq!(out, ".env.example\n.gitignore\na/\n  y/\n  z.rs\nb.txt\n", "{out}");
    }

    #[test]
    fn names_that_could_be_misread_are_quoted() {
        let (_d, ws) = ws();
        for p in ["evil\nb.txt", "a\x1b[2J", " pad", "\"q", "plain é.txt"] {
            touch(&ws, p);
        }
        let out = list(&ws, serde_json::json!({}));
        let expected = "\" pad\"\n\"\\\"q\"\n\"a\\u{1b}[2J\"\n\"evil\\nb.txt\"\nplain é.txt\n";
        assert_eq!(out, expected, "{out}");
    }

    #[test]
    fn depth_and_subdirectory() {
        let (_d, ws) = ws();
        touch(&ws, "a/b/c/d.txt");
        assert_eq!(list(&ws, serde_json::json!({"depth": 1})), "a/\n");
        assert_eq!(
            list(&ws, serde_json::json!({"path": "a", "depth": 9})),
            "b/\n  c/\n    d.txt\n"
        );
    }

    #[test]
    fn caps_entries_and_says_how_many_were_left_out() {
        let (_d, ws) = ws();
        for i in 0..MAX_ENTRIES + 7 {
            touch(&ws, &format!("f{i:04}"));
        }
        let out = list(&ws, serde_json::json!({}));
        assert_eq!(out.lines().count(), MAX_ENTRIES + 1);
        assert!(out.ends_with("(7 more entries left out; list a subdirectory or lower depth)\n"));
    }

    #[test]
    fn refuses_files_missing_paths_and_escapes() {
        let (_d, ws) = ws();
        touch(&ws, "f.txt");
        let err =
            |p: &str| ListDir.run(&ws, serde_json::json!({"path": p})).unwrap_err().to_string();
        assert!(err("f.txt").contains("not a directory"));
        assert!(err("nope").contains("does not exist"));
        assert!(err("..").contains("outside"));
        std::fs::create_dir(ws.root().join("empty")).unwrap();
        assert_eq!(list(&ws, serde_json::json!({"path": "empty"})), "empty: empty directory");
    }
}

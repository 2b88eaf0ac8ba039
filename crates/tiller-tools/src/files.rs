//! The workspace's paths as the model may name them: listed by the walker every tool shares
//! (gitignore-aware, withheld files left out), used to mark which tool arguments are paths so that
//! a grammar can hold them to paths that exist, and to suggest the closest paths when a model names
//! one that does not.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tiller_types::ToolSpec;

use crate::list_dir::walker;
use crate::{ToolError, Workspace};

/// The schema key that marks a string argument as a workspace path. Its value says which paths
/// fit: `"file"` (an existing file), `"dir"` (an existing directory), `"any"` (either), `"new"`
/// (any path: the tool may create it). Removed by [`constrain_specs`] before a model sees it.
pub const PATH_KEY: &str = "x-tiller-path";

/// The schema key that marks a string argument as lines of the file named by another argument
/// of the same object (the key's value is that argument's name). With [`FileList::read_lines`],
/// the object becomes one alternative per file, its path fixed and the text one of its lines.
pub const LINES_KEY: &str = "x-tiller-lines-of";

/// Most lines offered as the choices of a [`LINES_KEY`] argument, over all files.
pub const MAX_LINE_CHOICES: usize = 300;

/// Most paths listed as the choices of one argument; past that, the argument stays a free
/// string, so that a grammar stays small on large repositories.
pub const MAX_CHOICES: usize = 400;

/// Most entries [`FileList::scan`] visits.
const MAX_SCAN: usize = 5000;

/// The workspace's files and directories, relative to its root, shallow ones first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileList {
    pub files: Vec<String>,
    /// Directories, `.` (the root) first.
    pub dirs: Vec<String>,
    /// The walk stopped early: the lists are not the whole workspace.
    pub truncated: bool,
    /// Lines of some files that a [`LINES_KEY`] argument may choose from, by path.
    pub lines: BTreeMap<String, Vec<String>>,
}

impl FileList {
    /// Lists `ws` (up to a few thousand entries), shallow paths first, then by name.
    pub fn scan(ws: &Workspace) -> FileList {
        let mut list = FileList { dirs: vec![".".into()], ..FileList::default() };
        // Unreadable entries are skipped: a listing is best-effort.
        for (n, entry) in walker(ws.root()).build().flatten().enumerate() {
            if n == MAX_SCAN {
                list.truncated = true;
                break;
            }
            if entry.depth() == 0 || ws.is_denied(entry.path()) {
                continue;
            }
            let path = ws.relative(entry.path());
            match entry.file_type() {
                Some(t) if t.is_dir() => list.dirs.push(path),
                Some(t) if t.is_file() => list.files.push(path),
                _ => {}
            }
        }
        let depth = |p: &String| p.matches('/').count();
        list.files.sort_by(|a, b| depth(a).cmp(&depth(b)).then_with(|| a.cmp(b)));
        list.dirs.sort_by(|a, b| (a != ".").cmp(&(b != ".")).then_with(|| a.cmp(b)));
        list
    }

    /// Offers the lines of `paths` (existing text files that tools may write, in order, while
    /// the total stays under [`MAX_LINE_CHOICES`]) to [`LINES_KEY`] arguments: each line that is
    /// not blank and occurs once, so that replacing it always applies.
    pub fn read_lines(&mut self, ws: &Workspace, paths: &[String]) {
        let mut total = self.lines.values().map(Vec::len).sum::<usize>();
        for path in paths {
            let (Ok(abs), Ok(Some(text))) = (ws.resolve_write(path), ws.read_text(path)) else {
                continue;
            };
            let mut count = BTreeMap::new();
            for line in text.lines() {
                *count.entry(line).or_insert(0) += 1;
            }
            let once: Vec<String> = text
                .lines()
                .filter(|l| !l.trim().is_empty() && count[l] == 1)
                .map(str::to_string)
                .collect();
            if once.is_empty() || total + once.len() > MAX_LINE_CHOICES {
                continue;
            }
            total += once.len();
            self.lines.insert(ws.relative(&abs), once);
        }
    }

    /// The paths that fit a [`PATH_KEY`] kind, or `None` where any string fits.
    fn choices(&self, kind: &str) -> Option<Vec<&String>> {
        let chosen: Vec<&String> = match kind {
            "file" => self.files.iter().collect(),
            "dir" => self.dirs.iter().collect(),
            "any" => self.dirs.iter().chain(&self.files).collect(),
            _ => return None,
        };
        (!self.truncated && !chosen.is_empty() && chosen.len() <= MAX_CHOICES).then_some(chosen)
    }

    /// Up to `n` existing paths closest to `wanted`: same file name first, then the most path
    /// components in common from the end, then the smallest edit distance between the names.
    pub fn closest(&self, wanted: &str, n: usize) -> Vec<String> {
        let parts: Vec<&str> = wanted.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
        let name = parts.last().copied().unwrap_or_default();
        let score = |path: &String| {
            let theirs: Vec<&str> = path.split('/').collect();
            let common = theirs.iter().rev().zip(parts.iter().rev()).take_while(|(a, b)| a == b);
            let last = theirs.last().copied().unwrap_or_default();
            (common.count(), usize::MAX - edit_distance(last, name))
        };
        let dirs = self.dirs.iter().filter(|d| *d != ".");
        let mut ranked: Vec<&String> = self.files.iter().chain(dirs).collect();
        ranked.sort_by_key(|p| std::cmp::Reverse(score(p)));
        ranked.into_iter().take(n).cloned().collect()
    }
}

/// The tools' specs as sent to a model. With `paths` (a provider that samples calls under a
/// grammar made from the schemas), each argument marked with [`PATH_KEY`] becomes an `enum` of the
/// paths that fit it, so that the model cannot name one that does not exist; without, or where
/// there are too many paths, it stays a plain string. The marks are removed either way.
pub fn constrain_specs(specs: &mut [ToolSpec], paths: Option<&FileList>) {
    for spec in specs {
        constrain(&mut spec.parameters, paths);
    }
}

fn constrain(schema: &mut Value, paths: Option<&FileList>) {
    if let Some(alternatives) = paths.and_then(|p| per_file(schema, p)) {
        *schema = alternatives;
    }
    match schema {
        Value::Object(map) => {
            map.remove(LINES_KEY);
            if let Some(kind) = map.remove(PATH_KEY)
                && let Some(choices) = paths.and_then(|p| p.choices(kind.as_str().unwrap_or("")))
            {
                map.insert("enum".into(), json!(choices));
            }
            map.values_mut().for_each(|v| constrain(v, paths));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| constrain(v, paths)),
        _ => {}
    }
}

/// For an object schema with a [`LINES_KEY`] property: one alternative per file whose lines are
/// offered, with the path fixed and the property one of the lines.
fn per_file(schema: &Value, paths: &FileList) -> Option<Value> {
    let props = schema.get("properties")?.as_object()?;
    let (text_arg, path_arg) =
        props.iter().find_map(|(k, v)| Some((k, v.get(LINES_KEY)?.as_str()?)))?;
    if paths.lines.is_empty() {
        return None;
    }
    let required = schema.get("required").cloned().unwrap_or(json!([]));
    let alternatives = paths.lines.iter().map(|(path, lines)| {
        let mut props: Map<String, Value> = props.clone();
        props.insert(path_arg.into(), json!({"const": path}));
        props.insert(text_arg.clone(), json!({"enum": lines}));
        json!({"type": "object", "properties": props, "required": required})
    });
    Some(json!({"anyOf": alternatives.collect::<Vec<_>>()}))
}

/// The text of a tool's error for the model: where a path was wrong, with the closest existing
/// paths, so that the next call can name one that exists.
pub fn explain(ws: &Workspace, err: &ToolError) -> String {
    let text = err.to_string();
    let ToolError::Path { path, .. } = err else {
        return text;
    };
    let closest = FileList::scan(ws).closest(path, 3);
    if closest.is_empty() {
        return format!("{text}. Paths are relative to the workspace root.");
    }
    format!(
        "{text}. Paths are relative to the workspace root; the closest that exist: {}.",
        closest.join(", ")
    )
}

/// The edit distance between two short names, in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tool;
    use crate::workspace::temp_workspace as ws;
    use serde_json::json;

    fn touch(ws: &Workspace, path: &str) {
        let abs = ws.root().join(path);
        std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
        std::fs::write(abs, "x").unwrap();
    }

    fn sample() -> (tempfile::TempDir, Workspace) {
        let (dir, ws) = ws();
        for p in ["src/greet.py", "test_greet.py", "README.md", "target/x.o", ".gitignore"] {
            touch(&ws, p);
        }
        std::fs::write(ws.root().join(".gitignore"), "target/\n").unwrap();
        (dir, ws)
    }

    #[test]
    fn scan_lists_shallow_paths_first_and_skips_ignored_and_denied_ones() {
        let (_d, ws) = sample();
        let ws = ws.deny(&["README*".into()]).unwrap();
        let list = FileList::scan(&ws);
        assert_eq!(list.files, [".gitignore", "test_greet.py", "src/greet.py"]);
        assert_eq!(list.dirs, [".", "src"]);
        assert!(!list.truncated);
    }

    #[test]
    fn marked_arguments_become_enums_only_with_paths() {
        let (_d, ws) = sample();
        let list = FileList::scan(&ws);
        let spec = |kind: &str| ToolSpec {
            name: "t".into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", PATH_KEY: kind}}}),
        };
        let mut specs = vec![spec("file"), spec("dir"), spec("new")];
        constrain_specs(&mut specs, Some(&list));
        let path = |s: &ToolSpec| s.parameters["properties"]["path"].clone();
        assert_eq!(
            path(&specs[0]),
            json!({"type": "string", "enum": [".gitignore", "README.md", "test_greet.py", "src/greet.py"]})
        );
        assert_eq!(path(&specs[1]), json!({"type": "string", "enum": [".", "src"]}));
        assert_eq!(path(&specs[2]), json!({"type": "string"}));

        let mut remote = vec![spec("file")];
        constrain_specs(&mut remote, None);
        assert_eq!(
            path(&remote[0]),
            json!({"type": "string"}),
            "no mark leaves for a remote model"
        );

        let many = FileList { files: vec!["a".into(); MAX_CHOICES + 1], ..FileList::default() };
        let mut large = vec![spec("file")];
        constrain_specs(&mut large, Some(&many));
        assert_eq!(path(&large[0]), json!({"type": "string"}), "too many paths: a free string");
    }

    #[test]
    fn a_lines_argument_becomes_one_alternative_per_file_read() {
        let (_d, ws) = sample();
        std::fs::write(ws.root().join("test_greet.py"), "import x\n\nok\nok\n").unwrap();
        let mut list = FileList::scan(&ws);
        let mut specs = vec![crate::Replace.spec()];
        constrain_specs(&mut specs, Some(&list));
        assert_eq!(specs[0].parameters["properties"]["old"].get(LINES_KEY), None);
        assert!(specs[0].parameters["properties"]["path"]["enum"].is_array());

        list.read_lines(&ws, &["./test_greet.py".into(), "missing.py".into()]);
        let mut specs = vec![crate::Replace.spec()];
        constrain_specs(&mut specs, Some(&list));
        let alternatives = specs[0].parameters["anyOf"].as_array().unwrap();
        assert_eq!(alternatives.len(), 1);
        let props = &alternatives[0]["properties"];
        assert_eq!(props["path"], json!({"const": "test_greet.py"}));
        assert_eq!(
            props["old"],
            json!({"enum": ["import x"]}),
            "blank and repeated lines left out"
        );
        assert_eq!(alternatives[0]["required"], json!(["path", "old", "new"]));
    }

    /// The lines of a file no tool may write (`.tiller/project.toml`: the commands that check
    /// the agent's work) are never offered: a `replace` of them could only be refused.
    #[test]
    fn lines_are_offered_only_of_files_tools_may_write() {
        let (_d, ws) = sample();
        std::fs::create_dir(ws.root().join(".tiller")).unwrap();
        std::fs::write(ws.root().join(".tiller/project.toml"), "test = \"sh test.sh\"\n").unwrap();
        std::fs::write(ws.root().join("src/greet.py"), "def greet():\n").unwrap();
        let mut list = FileList::scan(&ws);
        assert!(list.files.contains(&".tiller/project.toml".to_string()), "{:?}", list.files);
        list.read_lines(&ws, &[".tiller/project.toml".into(), "src/greet.py".into()]);
        assert_eq!(list.lines.keys().collect::<Vec<_>>(), ["src/greet.py"]);
    }

    #[test]
    fn a_wrong_path_is_answered_with_the_closest_ones() {
        let (_d, ws) = sample();
        let list = FileList::scan(&ws);
        assert_eq!(list.closest("/Users/someone/project/src/greet.py", 1), ["src/greet.py"]);
        assert_eq!(list.closest("tests/test_gret.py", 1), ["test_greet.py"]);
        let err = ToolError::path("/tmp/greet.py", "is outside the workspace");
        let text = explain(&ws, &err);
        assert!(
            text.starts_with("/tmp/greet.py: is outside the workspace. Paths are relative to the workspace root; the closest that exist: src/greet.py, "),
            "{text}"
        );
        assert_eq!(explain(&ws, &ToolError::Other("boom".into())), "boom");
    }

    #[test]
    fn edit_distance_counts_changes() {
        assert_eq!(edit_distance("greet.py", "gret.py"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

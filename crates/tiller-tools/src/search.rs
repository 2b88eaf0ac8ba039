//! The `search` tool: regex or literal search over the workspace with ripgrep's crates, on the
//! same gitignore-aware walk as `list_dir`. Binary files are skipped; each matching line is
//! reported as `path:line: text`.

use std::io;

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::overrides::OverrideBuilder;
use serde::Deserialize;
use tiller_types::ToolSpec;
use tiller_types::text::clip;

use crate::list_dir::walker;
use crate::{Observation, Quote, Tool, ToolError, ToolKind, ToolOutput, Workspace, parse_args};

/// Results reported when the model does not say.
const DEFAULT_RESULTS: usize = 100;
/// Most results one call may ask for.
const MAX_RESULTS: usize = 1000;
/// Characters of a matching line shown before it is cut.
const MAX_LINE_CHARS: usize = 300;

/// Searches file contents.
pub struct Search;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    pattern: String,
    #[serde(default = "default_path")]
    path: String,
    glob: Option<String>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default)]
    literal: bool,
    #[serde(default = "default_results")]
    max_results: usize,
}

fn default_path() -> String {
    ".".into()
}

fn default_results() -> usize {
    DEFAULT_RESULTS
}

impl Tool for Search {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "search".into(),
            description: format!(
                "Search file contents for a regex (Rust syntax; literal=true for plain text). \
                 Skips gitignored and binary files. Prints path:line: text for each matching \
                 line, at most max_results (default {DEFAULT_RESULTS}, max {MAX_RESULTS})."
            ),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "Regex to find, or plain text when literal is true."},
                    "path": {"type": "string", (crate::PATH_KEY): "any", "description": "File or directory to search, relative to the workspace root. Default \".\"."},
                    "glob": {"type": "string", "description": "Only search files matching this glob, e.g. \"*.rs\" or \"src/**/*.py\"."},
                    "ignore_case": {"type": "boolean", "description": "Match case-insensitively. Default false."},
                    "literal": {"type": "boolean", "description": "Treat pattern as plain text, not a regex. Default false."},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "Most matching lines to show. Default 100."}
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(args)?;
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(args.ignore_case)
            .fixed_strings(args.literal)
            .build(&args.pattern)
            .map_err(|e| ToolError::Arguments(format!("invalid regex: {e}")))?;
        let root = ws.resolve(&args.path)?;
        if !root.exists() {
            return Err(ToolError::path(&args.path, "does not exist"));
        }
        let mut walk = walker(&root);
        if let Some(glob) = &args.glob {
            let bad = |e: ignore::Error| ToolError::Arguments(format!("invalid glob: {e}"));
            let overrides =
                OverrideBuilder::new(ws.root()).add(glob).map_err(bad)?.build().map_err(bad)?;
            walk.overrides(overrides);
        }
        let limit = args.max_results.clamp(1, MAX_RESULTS);
        let mut searcher = SearcherBuilder::new()
            .line_number(true)
            .binary_detection(BinaryDetection::quit(0))
            .build();
        let mut out = String::new();
        let mut quotes = Vec::new();
        let mut found = 0;
        // Unreadable files and walk errors are skipped: a search is best-effort.
        for entry in walk.build().flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) || ws.is_denied(entry.path()) {
                continue;
            }
            // One more than the remaining room, to know whether anything was left out.
            let mut sink = Collect::new(limit - found + 1);
            if searcher.search_path(&matcher, entry.path(), &mut sink).is_err() || sink.binary {
                continue;
            }
            let path = ws.relative(entry.path());
            for (line, text) in sink.lines.iter().take(limit - found) {
                out.push_str(&format!("{path}:{line}: {text}\n"));
                let line = *line as u32;
                quotes.push(Quote { path: path.clone(), first: line, last: line });
            }
            found += sink.lines.len();
            if found > limit {
                out.push_str(&format!(
                    "(stopped at {limit} matches; narrow the pattern, path or glob)\n"
                ));
                break;
            }
        }
        if out.is_empty() {
            out.push_str("no matches");
        }
        Ok(ToolOutput::Text(Observation { text: out, quotes, exit_code: None }))
    }
}

/// Collects the matching lines of one file, up to a limit, and notes binary data.
struct Collect {
    lines: Vec<(u64, String)>,
    limit: usize,
    binary: bool,
}

impl Collect {
    fn new(limit: usize) -> Self {
        Collect { lines: Vec::new(), limit, binary: false }
    }
}

impl Sink for Collect {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let first = mat.line_number().unwrap_or(0);
        for (n, line) in (first..).zip(mat.lines()) {
            if self.lines.len() == self.limit {
                break;
            }
            let text = String::from_utf8_lossy(line);
            self.lines.push((n, clip(text.trim_end(), MAX_LINE_CHARS).into_owned()));
        }
        Ok(self.lines.len() < self.limit)
    }

    fn binary_data(&mut self, _: &Searcher, _offset: u64) -> Result<bool, io::Error> {
        // Matches found before the binary data are dropped too: the file is skipped whole.
        self.binary = true;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let (dir, ws) = crate::workspace::temp_workspace();
        for (path, text) in [
            ("src/main.rs", "fn main() {\n    let x = a.b(1);\n}\n"),
            ("src/lib.rs", "pub fn Helper() {}\nfn helper() {}\n"),
            ("notes.md", "helper notes\na.b(1) here\n"),
            ("target/gen.rs", "fn helper() {}\n"),
            (".gitignore", "target/\n"),
        ] {
            let abs = dir.path().join(path);
            std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
            std::fs::write(abs, text).unwrap();
        }
        (dir, ws)
    }

    fn search(ws: &Workspace, args: serde_json::Value) -> Result<String, String> {
        match Search.run(ws, args) {
            Ok(ToolOutput::Text(o)) => Ok(o.text),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn regex_search_is_sorted_and_skips_ignored_files() {
        let (_d, ws) = ws();
        let out = search(&ws, serde_json::json!({"pattern": "fn \\w+elper"})).unwrap();
        assert_eq!(out, "src/lib.rs:1: pub fn Helper() {}\nsrc/lib.rs:2: fn helper() {}\n");
        let out = search(
            &ws,
            serde_json::json!({"pattern": "HELPER", "ignore_case": true, "path": "src"}),
        )
        .unwrap();
        assert_eq!(out.lines().count(), 2, "{out}");
    }

    #[test]
    fn quotes_each_matching_line_and_skips_denied_files() {
        let (_d, ws) = ws();
        ws.write_atomic("tls/key.pem", "fn helper_key\n").unwrap();
        let ws = ws.deny(&["*.pem".into()]).unwrap();
        let Ok(ToolOutput::Text(o)) =
            Search.run(&ws, serde_json::json!({"pattern": "fn \\w+elper"}))
        else {
            panic!("not an observation")
        };
        let quote = |line| Quote { path: "src/lib.rs".into(), first: line, last: line };
        assert_eq!(o.quotes, [quote(1), quote(2)], "{}", o.text);
    }

    #[test]
    fn literal_and_glob() {
        let (_d, ws) = ws();
        let out = search(&ws, serde_json::json!({"pattern": "a.b(1)", "literal": true})).unwrap();
        assert_eq!(out, "notes.md:2: a.b(1) here\nsrc/main.rs:2:     let x = a.b(1);\n");
        let out =
            search(&ws, serde_json::json!({"pattern": "a.b(1)", "literal": true, "glob": "*.rs"}))
                .unwrap();
        assert_eq!(out, "src/main.rs:2:     let x = a.b(1);\n");
    }

    #[test]
    fn binary_files_are_skipped() {
        let (dir, ws) = ws();
        std::fs::write(dir.path().join("blob.bin"), b"helper\0\x01\x02helper\n").unwrap();
        // A NUL far past the first match: the match seen before it is dropped too.
        let late = format!("helper\n{}\0", "text\n".repeat(100_000));
        std::fs::write(dir.path().join("late.bin"), late).unwrap();
        let out = search(&ws, serde_json::json!({"pattern": "helper", "glob": "*.bin"})).unwrap();
        assert_eq!(out, "no matches");
    }

    #[test]
    fn caps_results_with_a_note() {
        let (dir, ws) = ws();
        let many: String = (0..50).map(|i| format!("hit {i}\n")).collect();
        std::fs::write(dir.path().join("many.txt"), many).unwrap();
        let out = search(&ws, serde_json::json!({"pattern": "hit", "max_results": 10})).unwrap();
        assert_eq!(out.lines().count(), 11, "{out}");
        assert!(out.starts_with("many.txt:1: hit 0\n"));
        assert!(out.ends_with("(stopped at 10 matches; narrow the pattern, path or glob)\n"));
        // Exactly as many matches as the limit: no note.
        let out =
            search(&ws, serde_json::json!({"pattern": "hit 4\\d", "max_results": 10})).unwrap();
        assert_eq!(out.lines().count(), 10, "{out}");
    }

    #[test]
    fn long_lines_are_cut() {
        let (dir, ws) = ws();
        std::fs::write(dir.path().join("wide.txt"), format!("needle{}\n", "x".repeat(999)))
            .unwrap();
        let out = search(&ws, serde_json::json!({"pattern": "needle"})).unwrap();
        assert!(out.ends_with("x…\n"), "{out}");
        assert!(out.len() < MAX_LINE_CHARS + 40, "{}", out.len());
    }

    #[test]
    fn bad_arguments_are_errors() {
        let (_d, ws) = ws();
        let err = search(&ws, serde_json::json!({"pattern": "fn ("})).unwrap_err();
        assert!(err.starts_with("invalid arguments: invalid regex"), "{err}");
        let err = search(&ws, serde_json::json!({"pattern": "x", "path": "nope"})).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(search(&ws, serde_json::json!({"pattern": "x", "path": "../"})).is_err());
        assert_eq!(search(&ws, serde_json::json!({"pattern": "zzz"})).unwrap(), "no matches");
    }
}

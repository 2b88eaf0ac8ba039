//! The `read_file` tool: a text file, or a range of its lines, numbered like `cat -n`.
//!
//! One call shows at most [`MAX_LINES`] lines and about [`MAX_BYTES`] bytes; a final note says
//! which lines were shown whenever that is not the whole file, so the model knows how to go on.

use serde::Deserialize;
use tiller_types::ToolSpec;

use crate::{Observation, Outcome, Quote, Tool, ToolError, ToolKind, Workspace, parse_args};

/// Most lines shown by one call.
const MAX_LINES: usize = 2000;
/// Most bytes of text shown by one call.
const MAX_BYTES: usize = 64 * 1024;
/// Characters of one line shown before it is cut.
const MAX_LINE_CHARS: usize = 1000;

/// Reads a text file with line numbers.
pub struct ReadFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
    start_line: Option<usize>,
    end_line: Option<usize>,
}

impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: format!(
                "Read a text file; lines are numbered. Optional start_line/end_line (1-based, \
                 inclusive) read a range. Shows at most {MAX_LINES} lines or {} KiB per call; \
                 a note at the end says where to continue.",
                MAX_BYTES / 1024
            ),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", (crate::PATH_KEY): "file", "description": "File path, relative to the workspace root."},
                    "start_line": {"type": "integer", "minimum": 1, "description": "First line to show. Default 1."},
                    "end_line": {"type": "integer", "minimum": 1, "description": "Last line to show. Default: as far as the caps allow."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<Outcome, ToolError> {
        let args: Args = parse_args(args)?;
        let text = ws
            .read_text(&args.path)?
            .ok_or_else(|| ToolError::path(&args.path, "does not exist"))?;
        let lines: Vec<&str> = text.lines().collect();
        let total = lines.len();
        let start = args.start_line.unwrap_or(1);
        if total == 0 {
            return match start {
                1 => Ok(Outcome::from(format!("{}: empty file", args.path))),
                _ => Err(ToolError::Arguments(format!(
                    "start_line {start} is past the end of {} (empty file)",
                    args.path
                ))),
            };
        }
        if start == 0 || start > total {
            return Err(ToolError::Arguments(format!(
                "start_line {start} is out of range: {} has lines 1-{total}",
                args.path
            )));
        }
        let end = args.end_line.unwrap_or(total).min(total);
        if end < start {
            return Err(ToolError::Arguments(format!(
                "end_line {end} is before start_line {start}"
            )));
        }
        let (text, last) = number_lines(&lines, start, end);
        let quote =
            Quote { path: ws.relative(&ws.resolve(&args.path)?), first: start as u32, last };
        Ok(Outcome::Text(Observation { text, quotes: vec![quote], exit_code: None }))
    }
}

/// Lines `start..=end` (1-based) of `lines`, numbered and capped, with a note when the result is
/// not the whole file; and the last line shown.
fn number_lines(lines: &[&str], start: usize, end: usize) -> (String, u32) {
    let total = lines.len();
    let width = end.to_string().len();
    let mut out = String::new();
    let mut last = start - 1;
    for (n, line) in (start..=end).zip(&lines[start - 1..end]) {
        let entry = format!("{n:>width$}\t{}\n", cut_line(line));
        let over = n - start >= MAX_LINES || out.len() + entry.len() > MAX_BYTES;
        // Always show at least one line, or a huge first line would make no progress.
        if over && n > start {
            break;
        }
        out.push_str(&entry);
        last = n;
    }
    if start > 1 || last < total {
        let more = if last < total {
            format!("; pass start_line={} to read on", last + 1)
        } else {
            String::new()
        };
        out.push_str(&format!("(lines {start}-{last} of {total}{more})\n"));
    }
    (out, last as u32)
}

/// A line cut to [`MAX_LINE_CHARS`] characters, with a marker saying how much was dropped.
fn cut_line(line: &str) -> std::borrow::Cow<'_, str> {
    match line.char_indices().nth(MAX_LINE_CHARS) {
        None => line.into(),
        Some((at, _)) => {
            let rest = line[at..].chars().count();
            format!("{}… [{rest} more characters]", &line[..at]).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws_with(name: &str, content: &[u8]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), content).unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        (dir, ws)
    }

    fn read(ws: &Workspace, args: serde_json::Value) -> Result<String, String> {
        match ReadFile.run(ws, args) {
            Ok(Outcome::Text(o)) => Ok(o.text),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn whole_small_file_has_no_note() {
        let (_d, ws) = ws_with("a.txt", b"one\ntwo\r\nthree");
        assert_eq!(
            read(&ws, serde_json::json!({"path": "a.txt"})).unwrap(),
            "1\tone\n2\ttwo\n3\tthree\n"
        );
    }

    #[test]
    fn ranges_are_inclusive_and_noted() {
        let (_d, ws) = ws_with("a.txt", numbered(12).as_bytes());
        let out = read(&ws, serde_json::json!({"path": "a.txt", "start_line": 9, "end_line": 10}))
            .unwrap();
        assert_eq!(
            out,
            " 9\tline 9\n10\tline 10\n(lines 9-10 of 12; pass start_line=11 to read on)\n"
        );
        // An end past the file is clamped; reaching the end drops the "read on" hint.
        let out = read(&ws, serde_json::json!({"path": "a.txt", "start_line": 12, "end_line": 99}))
            .unwrap();
        assert_eq!(out, "12\tline 12\n(lines 12-12 of 12)\n");
    }

    #[test]
    fn quotes_the_lines_shown() {
        let (_d, ws) = ws_with("a.txt", numbered(3000).as_bytes());
        let Ok(Outcome::Text(o)) =
            ReadFile.run(&ws, serde_json::json!({"path": "./a.txt", "start_line": 5}))
        else {
            panic!("not an observation")
        };
        let last = 5 + MAX_LINES as u32 - 1;
        assert_eq!(o.quotes, [Quote { path: "a.txt".into(), first: 5, last }]);
    }

    #[test]
    fn out_of_range_lines_are_errors() {
        let (_d, ws) = ws_with("a.txt", numbered(3).as_bytes());
        let err = read(&ws, serde_json::json!({"path": "a.txt", "start_line": 4})).unwrap_err();
        assert!(err.contains("lines 1-3"), "{err}");
        let err = read(&ws, serde_json::json!({"path": "a.txt", "start_line": 3, "end_line": 2}))
            .unwrap_err();
        assert!(err.contains("before start_line"), "{err}");
        assert!(read(&ws, serde_json::json!({"path": "a.txt", "start_line": 0})).is_err());
    }

    #[test]
    fn caps_lines_and_bytes() {
        let (_d, ws) = ws_with("big.txt", numbered(5120).as_bytes());
        let out = read(&ws, serde_json::json!({"path": "big.txt"})).unwrap();
        assert_eq!(out.lines().count(), MAX_LINES + 1);
        assert!(out.ends_with("(lines 1-2000 of 5120; pass start_line=2001 to read on)\n"));

        let wide: String = (0..200).map(|_| format!("{}\n", "x".repeat(900))).collect();
        let (_d, ws) = ws_with("wide.txt", wide.as_bytes());
        let out = read(&ws, serde_json::json!({"path": "wide.txt"})).unwrap();
        assert!(out.len() <= MAX_BYTES + 100, "{}", out.len());
        assert!(out.contains("pass start_line="), "{out}");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let line = "é".repeat(MAX_LINE_CHARS + 5);
        let (_d, ws) = ws_with("long.txt", line.as_bytes());
        let out = read(&ws, serde_json::json!({"path": "long.txt"})).unwrap();
        assert!(out.ends_with("é… [5 more characters]\n"), "{out}");
    }

    #[test]
    fn missing_directory_binary_and_bad_utf8_are_errors() {
        let (dir, ws) = ws_with("bin", b"\x7fELF\0\0\x01");
        std::fs::write(dir.path().join("latin1"), b"caf\xe9\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let err = |p: &str| read(&ws, serde_json::json!({"path": p})).unwrap_err();
        assert!(err("missing").contains("does not exist"));
        assert!(err("sub").contains("directory"));
        assert!(err("bin").contains("binary"));
        assert!(err("latin1").contains("UTF-8"));
        assert!(err("../x").contains("outside"));
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert_eq!(read(&ws, serde_json::json!({"path": "empty"})).unwrap(), "empty: empty file");
    }
}

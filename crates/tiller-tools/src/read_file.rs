//! The `read_file` tool: a text file, or a range of its lines, numbered like `cat -n`.
//!
//! One call shows at most [`MAX_LINES`] lines and about [`MAX_BYTES`] bytes; a final note says
//! which lines were shown whenever that is not the whole file, so the model knows how to go on.
//! The file is streamed, so a range of a huge file costs little memory.

use std::io::{self, BufRead, BufReader};

use serde::Deserialize;
use tiller_types::ToolSpec;
use tiller_types::text::clip_marked;

use crate::{Observation, Quote, Tool, ToolError, ToolKind, ToolOutput, Workspace, parse_args};

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

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(args)?;
        let file =
            ws.open(&args.path)?.ok_or_else(|| ToolError::path(&args.path, "does not exist"))?;
        let start = args.start_line.unwrap_or(1);
        let (lines, total) = read_lines(file, start, args.end_line.unwrap_or(usize::MAX))
            .map_err(|e| ToolError::path(&args.path, e.to_string()))?;
        if total == 0 {
            return match start {
                1 => Ok(ToolOutput::from(format!("{}: empty file", args.path))),
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
        let (text, last) = number_lines(&lines, start, end, total);
        let quote =
            Quote { path: ws.relative(&ws.resolve(&args.path)?), first: start as u32, last };
        Ok(ToolOutput::Text(Observation { text, quotes: vec![quote], exit_code: None }))
    }
}

/// Streams `file`, keeping lines `start..=end` (1-based) within the caps, each cut to
/// [`MAX_LINE_CHARS`]; and counts its lines. Memory stays bounded whatever the file's size.
fn read_lines(file: std::fs::File, start: usize, end: usize) -> io::Result<(Vec<String>, usize)> {
    let mut reader = BufReader::with_capacity(64 << 10, file);
    if reader.fill_buf()?.iter().take(8192).any(|&b| b == 0) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "is a binary file"));
    }
    let (mut kept, mut bytes, mut total, mut offset) = (Vec::new(), 0, 0, 0);
    let mut buf = Vec::new();
    loop {
        let wanted =
            total + 1 >= start && total < end && kept.len() < MAX_LINES && bytes <= MAX_BYTES;
        // Four bytes a character at most, and one more: a line cut here is cut below too.
        let keep = if wanted { MAX_LINE_CHARS * 4 + 4 } else { 0 };
        let Some((length, dropped)) = next_line(&mut reader, &mut buf, keep)? else {
            break;
        };
        total += 1;
        if wanted {
            let (line, cut) = decode(&buf, dropped > 0).map_err(|at| {
                let message = format!("is not valid UTF-8 (at byte {})", offset + at);
                io::Error::new(io::ErrorKind::InvalidData, message)
            })?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let more = |n| format!("… [{} more characters]", n + cut + dropped);
            let line = clip_marked(line, MAX_LINE_CHARS, more);
            bytes += line.len() + 8;
            kept.push(line.into_owned());
        }
        offset += length;
    }
    Ok((kept, total))
}

/// One line of `reader` without its newline: its first `keep` bytes go to `buf`. Returns the
/// bytes the line took, newline included, and the characters dropped past `keep`; `None` at
/// the end.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    keep: usize,
) -> io::Result<Option<(usize, usize)>> {
    buf.clear();
    let (mut length, mut dropped) = (0, 0);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((length > 0).then_some((length, dropped)));
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let line = &chunk[..newline.unwrap_or(chunk.len())];
        let room = keep.saturating_sub(buf.len()).min(line.len());
        buf.extend_from_slice(&line[..room]);
        // Characters are counted by their first bytes.
        dropped += line[room..].iter().filter(|&&b| b & 0xC0 != 0x80).count();
        let used = line.len() + usize::from(newline.is_some());
        reader.consume(used);
        length += used;
        if newline.is_some() {
            return Ok(Some((length, dropped)));
        }
    }
}

/// `bytes` as text, and how many characters were dropped: a character cut at the end of a
/// capped line. The error is the offset of the first invalid byte.
fn decode(bytes: &[u8], capped: bool) -> Result<(&str, usize), usize> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((text, 0)),
        Err(e) if capped && e.error_len().is_none() => {
            Ok((std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(), 1))
        }
        Err(e) => Err(e.valid_up_to()),
    }
}

/// `lines` (numbered from `start`, already cut) up to line `end`, numbered and capped, with a
/// note when the result is not the whole file of `total` lines; and the last line shown.
fn number_lines(lines: &[String], start: usize, end: usize, total: usize) -> (String, u32) {
    let width = end.to_string().len();
    let mut out = String::new();
    let mut last = start - 1;
    for (n, line) in (start..=end).zip(lines) {
        let entry = format!("{n:>width$}\t{line}\n");
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
            Ok(ToolOutput::Text(o)) => Ok(o.text),
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
        let Ok(ToolOutput::Text(o)) =
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
    fn files_too_large_to_hold_are_read_in_parts() {
        // Over the bound on whole reads, as two long lines and many short ones.
        let mut text = format!("{}\n{}\n", "a".repeat(9 << 20), "b".repeat(9 << 20));
        text.push_str(&numbered(100_000));
        let (_d, ws) = ws_with("huge.txt", text.as_bytes());
        let out =
            read(&ws, serde_json::json!({"path": "huge.txt", "start_line": 2, "end_line": 3}))
                .unwrap();
        let b = format!(
            "2\t{}… [{} more characters]\n",
            "b".repeat(MAX_LINE_CHARS),
            (9 << 20) - MAX_LINE_CHARS
        );
        assert!(out.starts_with(&b), "{}", &out[..100]);
        assert!(
            out.ends_with("3\tline 1\n(lines 2-3 of 100002; pass start_line=4 to read on)\n"),
            "{out}"
        );
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let (dir, ws) = ws_with("a.txt", b"a\n");
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // Nobody writes to the pipe: reading it would wait for ever.
        let err = read(&ws, serde_json::json!({"path": "fifo"})).unwrap_err();
        assert!(err.contains("named pipe, not a regular file"), "{err}");
        let err = ws.read_text("fifo").unwrap_err().to_string();
        assert!(err.contains("named pipe"), "{err}");
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

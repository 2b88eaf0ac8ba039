//! The patch format the model edits files with (docs/patch-format.md): its types, its parser and
//! its errors. Applying an update's chunks to a file's text lives in `patch/apply.rs`.

mod apply;

use std::collections::HashMap;

pub use apply::apply_chunks;

/// A parsed patch: file operations in the order given, each on a different path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub ops: Vec<PatchOp>,
}

/// One file operation of a patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchOp {
    /// Create `path` holding `content` (every line of it ends with `\n`).
    Add { path: String, content: String },
    /// Remove `path`.
    Delete { path: String },
    /// Change `path` by `chunks`, in order, then rename it to `move_to` if given.
    Update { path: String, move_to: Option<String>, chunks: Vec<Chunk> },
}

/// One region of an update: where it is and what it becomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Texts of the `@@` lines before it, each found on a line after the previous one; the
    /// chunk's lines come after the last.
    pub anchors: Vec<String>,
    /// Its lines in order, without line terminators.
    pub lines: Vec<ChunkLine>,
    /// Whether its old lines must be the last lines of the file (`*** End of File`).
    pub at_eof: bool,
}

/// One line of a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkLine {
    /// Kept as the file has it (` ` in the patch).
    Context(String),
    /// Removed (`-`).
    Remove(String),
    /// Added (`+`).
    Add(String),
}

/// Why a patch could not be read or applied. Line numbers are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch text breaks the grammar at `line`.
    #[error("patch line {line}: expected {expected}, found {found}")]
    Syntax { line: usize, expected: &'static str, found: String },
    /// Two operations of one patch name the same file.
    #[error("patch line {line}: {path} is already changed by patch line {first}")]
    Duplicate { line: usize, path: String, first: usize },
    /// The patch holds no file operation.
    #[error(
        "the patch changes no file: add `*** Add File:`, `*** Update File:` or `*** Delete File:` sections"
    )]
    Empty,
    /// A chunk's `@@` anchor is on no line after where its search began.
    #[error(
        "{path}: chunk {chunk}: no line from line {from} on contains the `@@` anchor {anchor:?}{}",
        apply::closest_line(.closest)
    )]
    AnchorNotFound {
        path: String,
        chunk: usize,
        from: usize,
        anchor: String,
        /// The most similar line, with its number.
        closest: Option<(usize, String)>,
    },
    /// A chunk's lines are not in the file where they may be.
    #[error(
        "{path}: chunk {chunk} does not match the file (searched from line {from} on{}).\n{}",
        if *.at_eof { ", at the end of the file" } else { "" },
        apply::mismatch(.expected, .closest, *.at_eof, *.from)
    )]
    NoMatch {
        path: String,
        chunk: usize,
        from: usize,
        at_eof: bool,
        /// The chunk's context and removed lines.
        expected: Vec<String>,
        /// The window of the file most like `expected`, with line numbers.
        closest: Vec<(usize, String)>,
    },
}

impl Chunk {
    /// The lines to find in the file: context and removed ones.
    pub fn old(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            ChunkLine::Context(t) | ChunkLine::Remove(t) => Some(t.as_str()),
            ChunkLine::Add(_) => None,
        })
    }
}

impl PatchOp {
    /// The file the operation works on (before any move).
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. } | PatchOp::Delete { path } | PatchOp::Update { path, .. } => {
                path
            }
        }
    }
}

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File:";
const DELETE: &str = "*** Delete File:";
const UPDATE: &str = "*** Update File:";
const MOVE: &str = "*** Move to:";
const END_OF_FILE: &str = "*** End of File";
const FENCE: &str = "```";

/// Reads a patch. Lenient where a slip is unambiguous (a fence or blank lines around it, a
/// missing `*** End Patch`, CRLF line ends, an empty line for an empty context line), strict
/// elsewhere: the error names the line and what was expected there.
pub fn parse_patch(text: &str) -> Result<Patch, PatchError> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let blank = |l: &&str| l.trim().is_empty();
    let mut start = lines.iter().position(|l| !blank(l)).unwrap_or(0);
    let mut end = lines.iter().rposition(|l| !blank(l)).map_or(start, |i| i + 1);
    if start < end && lines[start].trim_start().starts_with(FENCE) {
        start += 1;
        if start < end && lines[end - 1].trim() == FENCE {
            end -= 1;
        }
    }
    let mut parser = Parser { lines, pos: start, end };
    parser.skip_blank();
    parser.patch()
}

/// A cursor over the patch's lines `pos..end`.
struct Parser<'a> {
    lines: Vec<&'a str>,
    pos: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        (self.pos < self.end).then(|| self.lines[self.pos])
    }

    fn skip_blank(&mut self) {
        while self.peek().is_some_and(|l| l.trim().is_empty()) {
            self.pos += 1;
        }
    }

    fn error(&self, expected: &'static str) -> PatchError {
        PatchError::Syntax {
            line: self.pos + 1,
            expected,
            found: self.peek().map_or_else(|| "the end of the patch".into(), |l| format!("{l:?}")),
        }
    }

    fn patch(&mut self) -> Result<Patch, PatchError> {
        if self.peek().map(str::trim) != Some(BEGIN) {
            return Err(self.error("`*** Begin Patch`"));
        }
        self.pos += 1;
        let mut ops = Vec::new();
        let mut seen = HashMap::new();
        loop {
            self.skip_blank();
            let Some(line) = self.peek() else { break };
            if line.trim() == END {
                self.pos += 1;
                self.skip_blank();
                if self.peek().is_some() {
                    return Err(self.error("nothing after `*** End Patch`"));
                }
                break;
            }
            let at = self.pos + 1;
            let op = self.op()?;
            let moved = match &op {
                PatchOp::Update { move_to, .. } => move_to.as_deref(),
                _ => None,
            };
            for (path, line) in [(op.path(), at)].into_iter().chain(moved.map(|m| (m, at + 1))) {
                if let Some(first) = seen.insert(path.to_string(), line) {
                    let path = path.to_string();
                    return Err(PatchError::Duplicate { line, path, first });
                }
            }
            ops.push(op);
        }
        if ops.is_empty() {
            return Err(PatchError::Empty);
        }
        Ok(Patch { ops })
    }

    fn op(&mut self) -> Result<PatchOp, PatchError> {
        if let Some(path) = self.header(ADD)? {
            return Ok(PatchOp::Add { path, content: self.add_body()? });
        }
        if let Some(path) = self.header(DELETE)? {
            return Ok(PatchOp::Delete { path });
        }
        if let Some(path) = self.header(UPDATE)? {
            let move_to = self.header(MOVE)?;
            let chunks = self.chunks(move_to.is_some())?;
            return Ok(PatchOp::Update { path, move_to, chunks });
        }
        Err(self.error(
            "`*** Add File: PATH`, `*** Update File: PATH`, `*** Delete File: PATH` or `*** End Patch`",
        ))
    }

    /// The path of a `prefix` header line, which is consumed; `None` if the line is not one.
    fn header(&mut self, prefix: &str) -> Result<Option<String>, PatchError> {
        let Some(rest) = self.peek().and_then(|l| l.strip_prefix(prefix)) else {
            return Ok(None);
        };
        let path = rest.trim();
        if path.is_empty() {
            return Err(self.error("a path after the colon"));
        }
        self.pos += 1;
        Ok(Some(path.to_string()))
    }

    /// The `+` lines of a new file, up to the next `***` line.
    fn add_body(&mut self) -> Result<String, PatchError> {
        let (mut content, mut blanks) = (String::new(), 0);
        while let Some(line) = self.peek().filter(|l| !l.starts_with("***")) {
            if let Some(text) = line.strip_prefix('+') {
                content.extend(std::iter::repeat_n("\n", blanks));
                blanks = 0;
                content.push_str(text);
                content.push('\n');
            } else if line.trim().is_empty() {
                // A '+' the model left off an empty line; trailing ones are dropped.
                blanks += 1;
            } else {
                return Err(self.error("a line starting with '+' (a line of the new file)"));
            }
            self.pos += 1;
        }
        Ok(content)
    }

    /// The chunks of an update, up to the next `***` line other than `*** End of File`.
    fn chunks(&mut self, may_be_empty: bool) -> Result<Vec<Chunk>, PatchError> {
        let (mut chunks, mut chunk, mut blanks) = (Vec::new(), Chunk::default(), 0);
        while let Some(line) = self.peek() {
            if line.trim_end() == END_OF_FILE {
                if chunk.lines.is_empty() {
                    return Err(self.error("a line starting with ' ', '-' or '+'"));
                }
                chunk.at_eof = true;
                blanks = 0;
                chunks.push(std::mem::take(&mut chunk));
            } else if line.starts_with("***") {
                break;
            } else if let Some(rest) = line.strip_prefix("@@") {
                if !chunk.lines.is_empty() {
                    chunks.push(std::mem::take(&mut chunk));
                }
                chunk.anchors.extend(anchor_text(rest));
                blanks = 0;
            } else if line.is_empty() {
                // An empty context line that lost its space; trailing ones are dropped.
                blanks += 1;
            } else {
                let kind = match line.as_bytes().first() {
                    Some(b' ') => ChunkLine::Context,
                    Some(b'-') => ChunkLine::Remove,
                    Some(b'+') => ChunkLine::Add,
                    _ => return Err(self.error("a line starting with ' ', '-', '+' or `@@`")),
                };
                // The first byte is ASCII, so the text starts on a character boundary.
                let line = kind(line[1..].to_string());
                let blank = || ChunkLine::Context(String::new());
                chunk.lines.extend(std::iter::repeat_with(blank).take(blanks));
                blanks = 0;
                chunk.lines.push(line);
            }
            self.pos += 1;
        }
        if !chunk.lines.is_empty() {
            chunks.push(chunk);
        } else if !chunk.anchors.is_empty() || (chunks.is_empty() && !may_be_empty) {
            return Err(self.error("a line starting with ' ', '-' or '+'"));
        }
        Ok(chunks)
    }
}

/// The anchor of an `@@` line, given what follows the `@@`. A unified-diff range
/// (`@@ -12,7 +12,8 @@ fn f()`) locates nothing in this format, so only the text after it counts.
fn anchor_text(rest: &str) -> Option<String> {
    let mut text = rest.trim();
    if let Some((range, after)) = text.split_once("@@") {
        let parts: Vec<&str> = range.split_whitespace().collect();
        let is_range = |p: &str, sign: char| {
            p.strip_prefix(sign)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == ','))
        };
        if let [old, new] = parts[..]
            && is_range(old, '-')
            && is_range(new, '+')
        {
            text = after.trim();
        }
    }
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk from its anchors and its lines in patch notation (`" ctx"`, `"-old"`, `"+new"`).
    fn chunk(anchors: &[&str], lines: &[&str], at_eof: bool) -> Chunk {
        let lines = lines
            .iter()
            .map(|l| match l.split_at(1) {
                (" ", t) => ChunkLine::Context(t.into()),
                ("-", t) => ChunkLine::Remove(t.into()),
                (_, t) => ChunkLine::Add(t.into()),
            })
            .collect();
        Chunk { anchors: anchors.iter().map(|a| a.to_string()).collect(), lines, at_eof }
    }

    fn update(path: &str, move_to: Option<&str>, chunks: Vec<Chunk>) -> PatchOp {
        PatchOp::Update { path: path.into(), move_to: move_to.map(Into::into), chunks }
    }

    fn add(path: &str, content: &str) -> PatchOp {
        PatchOp::Add { path: path.into(), content: content.into() }
    }

    #[test]
    fn reads_good_patches() {
        let del = |p: &str| PatchOp::Delete { path: p.into() };
        let cases: Vec<(&str, &str, Vec<PatchOp>)> = vec![
            (
                "add",
                "*** Begin Patch\n*** Add File: a/b.txt\n+one\n+\n+two\n*** End Patch\n",
                vec![add("a/b.txt", "one\n\ntwo\n")],
            ),
            (
                "add an empty file",
                "*** Begin Patch\n*** Add File: e\n*** End Patch",
                vec![add("e", "")],
            ),
            (
                "add with bare empty lines, trailing ones dropped",
                "*** Begin Patch\n*** Add File: a\n+x\n\n+y\n\n\n*** End Patch",
                vec![add("a", "x\n\ny\n")],
            ),
            (
                "delete",
                "*** Begin Patch\n*** Delete File: old.txt\n*** End Patch",
                vec![del("old.txt")],
            ),
            (
                "update whose first chunk has no @@",
                "*** Begin Patch\n*** Update File: f\n a\n-b\n+B\n*** End Patch",
                vec![update("f", None, vec![chunk(&[], &[" a", "-b", "+B"], false)])],
            ),
            (
                "update and move",
                "*** Begin Patch\n*** Update File: f\n*** Move to: d/g\n@@\n-x\n+y\n*** End Patch",
                vec![update("f", Some("d/g"), vec![chunk(&[], &["-x", "+y"], false)])],
            ),
            (
                "pure rename",
                "*** Begin Patch\n*** Update File: f\n*** Move to: g\n*** End Patch",
                vec![update("f", Some("g"), vec![])],
            ),
            (
                "chunks with stacked anchors",
                "*** Begin Patch\n*** Update File: f\n@@ class A\n@@   def f():  \n-x\n+y\n@@\n z\n+w\n",
                vec![update(
                    "f",
                    None,
                    vec![
                        chunk(&["class A", "def f():"], &["-x", "+y"], false),
                        chunk(&[], &[" z", "+w"], false),
                    ],
                )],
            ),
            (
                "end of file marker",
                "*** Begin Patch\n*** Update File: f\n@@\n-x\n+y\n*** End of File\n*** End Patch",
                vec![update("f", None, vec![chunk(&[], &["-x", "+y"], true)])],
            ),
            (
                "empty context line as an empty line; trailing ones dropped",
                "*** Begin Patch\n*** Update File: f\n a\n\n-b\n\n\n*** Delete File: c\n",
                vec![update("f", None, vec![chunk(&[], &[" a", " ", "-b"], false)]), del("c")],
            ),
            (
                "unified-diff ranges are not anchors",
                "*** Begin Patch\n*** Update File: f\n@@ -1,3 +1,4 @@\n-x\n+y\n@@ -9,2 +10 @@ fn g()\n-p\n+q",
                vec![update(
                    "f",
                    None,
                    vec![
                        chunk(&[], &["-x", "+y"], false),
                        chunk(&["fn g()"], &["-p", "+q"], false),
                    ],
                )],
            ),
            (
                "fence, blank lines, CRLF and no End Patch",
                "\n  ```diff\r\n*** Begin Patch\r\n*** Add File: n\r\n+hi\r\n*** Delete File: d\r\n```\n\n",
                vec![add("n", "hi\n"), del("d")],
            ),
            (
                "markers with surrounding spaces, lines that look like markers",
                "  *** Begin Patch \n*** Update File: f\n- *** End Patch\n+***\n *** End Patch  \n*** End Patch  ",
                vec![update(
                    "f",
                    None,
                    vec![chunk(&[], &["- *** End Patch", "+***", " *** End Patch  "], false)],
                )],
            ),
        ];
        for (name, text, ops) in cases {
            assert_eq!(parse_patch(text), Ok(Patch { ops }), "{name}");
        }
    }

    #[test]
    fn refuses_bad_patches_naming_the_line() {
        let cases = [
            (
                "empty input",
                "  \n",
                "patch line 1: expected `*** Begin Patch`, found the end of the patch",
            ),
            (
                "no Begin Patch",
                "*** Update File: a\n-x",
                "patch line 1: expected `*** Begin Patch`, found \"*** Update File: a\"",
            ),
            ("no operation", "*** Begin Patch\n*** End Patch", "the patch changes no file"),
            (
                "unknown header",
                "*** Begin Patch\n*** Modify File: a\n",
                "patch line 2: expected `*** Add File: PATH`, `*** Update File: PATH`, \
                 `*** Delete File: PATH` or `*** End Patch`, found \"*** Modify File: a\"",
            ),
            (
                "header without a path",
                "*** Begin Patch\n*** Add File:   \n+x",
                "patch line 2: expected a path after the colon",
            ),
            (
                "chunk line without a prefix",
                "*** Begin Patch\n*** Update File: a\n@@\n foo\nbar\n",
                "patch line 5: expected a line starting with ' ', '-', '+' or `@@`, found \"bar\"",
            ),
            (
                "tab instead of a prefix",
                "*** Begin Patch\n*** Update File: a\n\tfoo\n",
                "patch line 3: expected a line starting with ' ', '-', '+' or `@@`",
            ),
            (
                "added file line without +",
                "*** Begin Patch\n*** Add File: a\n+x\ny\n",
                "patch line 4: expected a line starting with '+' (a line of the new file), found \"y\"",
            ),
            (
                "the same file twice",
                "*** Begin Patch\n*** Update File: a\n-x\n*** Delete File: a",
                "patch line 4: a is already changed by patch line 2",
            ),
            (
                "a move onto another operation's file",
                "*** Begin Patch\n*** Add File: b\n+x\n*** Update File: a\n*** Move to: b\n",
                "patch line 5: b is already changed by patch line 2",
            ),
            (
                "update without chunks",
                "*** Begin Patch\n*** Update File: a\n*** End Patch",
                "patch line 3: expected a line starting with ' ', '-' or '+', found \"*** End Patch\"",
            ),
            (
                "anchor without lines",
                "*** Begin Patch\n*** Update File: a\n-x\n@@ fn f\n\n*** End Patch",
                "patch line 6: expected a line starting with ' ', '-' or '+'",
            ),
            (
                "End of File before any line",
                "*** Begin Patch\n*** Update File: a\n*** End of File\n",
                "patch line 3: expected a line starting with ' ', '-' or '+', found \"*** End of File\"",
            ),
            (
                "text after End Patch",
                "*** Begin Patch\n*** Delete File: a\n*** End Patch\nthanks!",
                "patch line 4: expected nothing after `*** End Patch`, found \"thanks!\"",
            ),
            (
                "a stray line after a delete",
                "*** Begin Patch\n*** Delete File: a\n-x\n",
                "patch line 3: expected `*** Add File: PATH`",
            ),
        ];
        for (name, text, message) in cases {
            let err = parse_patch(text).expect_err(name).to_string();
            assert!(err.starts_with(message), "{name}: {err}");
        }
    }

    /// A tiny xorshift generator, so that the mutations below are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutated_patches_never_panic() {
        let file = "fn main() {\r\n    println!(“hi”);\r\n}\r\n\r\nfn é() {}\r\n";
        let seeds = [
            "*** Begin Patch\n*** Update File: a\n@@ fn main\n fn main() {\n-    println!(\"hi\");\n+    x();\n }\n*** End of File\n*** End Patch",
            "```\n*** Begin Patch\n*** Add File: b\n+x\n*** Delete File: c\n*** Update File: d\n*** Move to: e\n@@ -1 +1 @@\n\n-fn é() {}\n+\n```",
            "*** Begin Patch\n*** Update File: a\n@@\n+top\n@@ fn é\n@@ {}\n-}\n*** End Patch",
        ];
        let tokens = [
            "\n",
            "\r\n",
            " ",
            "+",
            "-",
            "@@",
            "@@ ",
            "***",
            "*** End of File\n",
            "*** End Patch",
            "*** Move to: ",
            "é",
            "“",
            "\u{2014}",
            "```",
            "\t",
            "-1,2 +3 @@",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut parsed, mut applied, mut failed) = (0, 0, 0);
        for round in 0..6000 {
            let mut text: Vec<char> = seeds[round % seeds.len()].chars().collect();
            for _ in 0..=rng.below(4) {
                let at = rng.below(text.len() + 1);
                match rng.below(4) {
                    0 => {
                        let end = (at + rng.below(12)).min(text.len());
                        text.drain(at..end);
                    }
                    1 => {
                        text.splice(at..at, tokens[rng.below(tokens.len())].chars()).for_each(drop)
                    }
                    2 => text.insert(at, char::from_u32(rng.below(0x3000) as u32).unwrap_or('x')),
                    _ => {
                        let end = (at + rng.below(30)).min(text.len());
                        let copy: Vec<char> = text[at..end].to_vec();
                        let to = rng.below(text.len() + 1);
                        text.splice(to..to, copy).for_each(drop);
                    }
                }
            }
            let text: String = text.into_iter().collect();
            let Ok(patch) = parse_patch(&text) else {
                failed += 1;
                continue;
            };
            parsed += 1;
            for op in &patch.ops {
                if let PatchOp::Update { chunks, .. } = op {
                    for old in [file, "", "x", "\n\n"] {
                        applied += usize::from(apply_chunks("a", old, chunks).is_ok());
                    }
                }
            }
        }
        // The mutations must reach every outcome, or this test would prove little.
        assert!(parsed > 500 && failed > 500 && applied > 50, "{parsed} {failed} {applied}");
    }
}

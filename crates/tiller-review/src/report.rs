//! The holdability report of one change and how it is put together from the files the change
//! leaves: line counts from a diff, the duplicates, and the longest function touched.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use similar::{DiffTag, TextDiff};

use crate::FileState;
use crate::duplicates::{self, Doc};
use crate::functions::functions;
use crate::lang::Lang;

/// The holdability report of one change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Lines added and removed over all files.
    pub added: usize,
    pub removed: usize,
    /// The files changed, in the order given.
    pub files: Vec<FileStat>,
    /// Runs of at least [`MIN_RUN`](crate::MIN_RUN) added lines that repeat code elsewhere.
    pub duplicates: Vec<Duplicate>,
    /// The longest function (in lines, after the change) that the change touches.
    pub longest_function: Option<Function>,
    /// Changed files not measured, and why (too large, binary), so that a report of nothing is
    /// never taken for a change of nothing.
    pub left_out: Vec<LeftOut>,
}

/// A changed file the report does not count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub path: String,
    /// `over 1 MiB`, `binary or not UTF-8`.
    pub reason: String,
}

/// Lines added and removed in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileStat {
    pub path: String,
    pub added: usize,
    pub removed: usize,
}

/// A run of added lines and one other place with the same code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    pub path: String,
    /// First and last line of the run in the new file, 1-based.
    pub lines: [u32; 2],
    pub other_path: String,
    pub other_lines: [u32; 2],
    /// The copies differ in names, numbers or strings; `false`: identical but for whitespace.
    pub same_shape: bool,
}

/// A function, as the heuristics of `docs/review.md` find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Function {
    pub path: String,
    pub name: String,
    /// First and last line, 1-based.
    pub lines: [u32; 2],
    pub length: u32,
}

impl Report {
    /// The report in one line, e.g. `+42 −7 in 3 files · duplicates: src/a.rs:10-17 ≈
    /// src/b.rs:40-47 (same shape) · longest function touched: parse_args (src/cli.rs:12-88, 77
    /// lines)`.
    pub fn render(&self) -> String {
        let plural = if self.files.len() == 1 { "" } else { "s" };
        let mut out =
            format!("+{} −{} in {} file{plural}", self.added, self.removed, self.files.len());
        let duplicates: Vec<String> = self
            .duplicates
            .iter()
            .map(|d| {
                let (sign, note) = if d.same_shape { ("≈", " (same shape)") } else { ("=", "") };
                let (here, there) = (span(d.lines), span(d.other_lines));
                format!("{}:{here} {sign} {}:{there}{note}", d.path, d.other_path)
            })
            .collect();
        match duplicates.is_empty() {
            true => out.push_str(" · duplicates: none"),
            false => out.push_str(&format!(" · duplicates: {}", duplicates.join(", "))),
        }
        if let Some(f) = &self.longest_function {
            let lines = span(f.lines);
            out.push_str(&format!(
                " · longest function touched: {} ({}:{lines}, {} lines)",
                f.name, f.path, f.length
            ));
        }
        if !self.left_out.is_empty() {
            let files: Vec<String> =
                self.left_out.iter().map(|f| format!("{} ({})", f.path, f.reason)).collect();
            out.push_str(&format!(" · left out: {}", files.join(", ")));
        }
        out
    }
}

fn span([a, b]: [u32; 2]) -> String {
    if a == b { a.to_string() } else { format!("{a}-{b}") }
}

/// What a line diff says about one file.
#[derive(Default)]
struct Changes {
    /// Numbers of the added lines in the new file, ascending.
    added: Vec<u32>,
    removed: usize,
    /// For each place where lines were only removed, the new file's line before it (0: the top).
    deleted_after: Vec<u32>,
}

fn changes(old: &str, new: &str) -> Changes {
    let mut out = Changes::default();
    // Past the deadline the diff is coarser (more lines count as changed), never wrong.
    let diff = TextDiff::configure().timeout(Duration::from_millis(500)).diff_lines(old, new);
    for op in diff.ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            continue;
        }
        out.removed += old_range.len();
        if new_range.is_empty() {
            out.deleted_after.push(new_range.start as u32);
        }
        out.added.extend(new_range.map(|i| i as u32 + 1));
    }
    out
}

/// The report of `files` against `others`, the rest of the repository as (path, text); paths in
/// `files` are taken from there, never from `others`.
pub(crate) fn build(files: &[FileState], others: &[(String, String)]) -> Report {
    let given: HashSet<&str> = files.iter().map(|f| f.path).collect();
    let mut docs: Vec<Doc> = others
        .iter()
        .filter(|(path, _)| !given.contains(path.as_str()))
        .filter_map(|(path, text)| Some(Doc::new(Lang::of(path)?, path, text, &[])))
        .collect();
    let mut report = Report::default();
    for file in files {
        let c = changes(file.old.unwrap_or(""), file.new.unwrap_or(""));
        let changed =
            !c.added.is_empty() || c.removed > 0 || file.old.is_some() != file.new.is_some();
        if changed {
            report.added += c.added.len();
            report.removed += c.removed;
            let (added, removed) = (c.added.len(), c.removed);
            report.files.push(FileStat { path: file.path.to_string(), added, removed });
        }
        let (Some(new), Some(lang)) = (file.new, Lang::of(file.path)) else { continue };
        docs.push(Doc::new(lang, file.path, new, &c.added));
        for f in functions(lang, new).into_iter().filter(|_| changed) {
            let touched = c.added.iter().any(|&l| f.start <= l && l <= f.end)
                || c.deleted_after.iter().any(|&l| f.start <= l && l < f.end);
            let length = f.end - f.start + 1;
            if touched && report.longest_function.as_ref().is_none_or(|g| length > g.length) {
                let (path, lines) = (file.path.to_string(), [f.start, f.end]);
                report.longest_function = Some(Function { path, name: f.name, lines, length });
            }
        }
    }
    report.duplicates = duplicates::find(&docs);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "fn short() {\n    a();\n}\n\nfn long() {\n    b();\n    c();\n    d();\n}\n";

    fn state<'a>(path: &'a str, old: &'a str, new: &'a str) -> FileState<'a> {
        FileState { path, old: Some(old), new: Some(new) }
    }

    fn longest(report: &Report) -> Option<(&str, [u32; 2])> {
        report.longest_function.as_ref().map(|f| (f.name.as_str(), f.lines))
    }

    #[test]
    fn counts_lines_per_file_and_in_all() {
        let files = [
            state("a.rs", "x\ny\nz\n", "x\nY\nz\nw\n"),
            FileState { path: "new.txt", old: None, new: Some("1\n2\n") },
            FileState { path: "gone.txt", old: Some("1\n"), new: None },
            state("same.rs", "s\n", "s\n"),
        ];
        let report = build(&files, &[]);
        assert_eq!((report.added, report.removed), (4, 2));
        let stats: Vec<_> = report.files.iter().map(|f| (&*f.path, f.added, f.removed)).collect();
        assert_eq!(stats, [("a.rs", 2, 1), ("new.txt", 2, 0), ("gone.txt", 0, 1)]);
    }

    #[test]
    fn the_longest_touched_function_is_chosen() {
        // Touching only `short` names it, though `long` is longer.
        let edited = LIB.replace("a();", "a(1);");
        let report = build(&[state("lib.rs", LIB, &edited)], &[]);
        assert_eq!(longest(&report), Some(("short", [1, 3])));
        // Touching both names the longer.
        let edited = edited.replace("c();", "c(1);");
        let report = build(&[state("lib.rs", LIB, &edited)], &[]);
        assert_eq!(report.longest_function.map(|f| (f.name, f.length)), Some(("long".into(), 5)));
    }

    #[test]
    fn a_deletion_touches_the_function_around_it_only() {
        let inside = LIB.replace("    c();\n", "");
        assert_eq!(longest(&build(&[state("lib.rs", LIB, &inside)], &[])), Some(("long", [5, 8])));
        // Deleting a whole function touches none of its neighbours.
        let whole = LIB.replace("fn short() {\n    a();\n}\n\n", "");
        assert_eq!(longest(&build(&[state("lib.rs", LIB, &whole)], &[])), None);
    }

    #[test]
    fn duplicates_count_against_the_rest_but_not_what_the_change_removes() {
        let body: String = (1..=7).map(|i| format!("    let v{i} = f{i}(x, {i});\n")).collect();
        let code = format!("fn a(x: u8) {{\n{body}}}\n");
        let renamed = code.replace("fn a", "fn b");
        // Moving a function within its file duplicates nothing.
        let other = "fn other() {\n    z();\n}\n";
        let (old, new) = (format!("{code}{other}"), format!("{other}{code}"));
        let moved = build(&[state("m.rs", &old, &new)], &[]);
        assert!(moved.added > 0 && moved.duplicates.is_empty(), "{moved:?}");
        // Adding a copy does.
        let others = [("m.rs".to_string(), code.clone())];
        let added = FileState { path: "n.rs", old: None, new: Some(&renamed) };
        let report = build(&[added], &others);
        let found: Vec<_> = report.duplicates.iter().map(|d| (&*d.other_path, d.lines)).collect();
        assert_eq!(found, [("m.rs", [2, 8])]);
        // Unless the same change deletes the original: a path given is never read from `others`.
        let deleted = FileState { path: "m.rs", old: Some(&code), new: None };
        assert_eq!(build(&[deleted, added], &others).duplicates, []);
    }

    #[test]
    fn renders_one_line() {
        let report = Report {
            added: 42,
            removed: 7,
            files: vec![FileStat { path: "src/a.rs".into(), added: 42, removed: 7 }],
            duplicates: vec![Duplicate {
                path: "src/a.rs".into(),
                lines: [10, 17],
                other_path: "src/b.rs".into(),
                other_lines: [40, 47],
                same_shape: true,
            }],
            longest_function: Some(Function {
                path: "src/cli.rs".into(),
                name: "parse_args".into(),
                lines: [12, 88],
                length: 77,
            }),
            left_out: vec![LeftOut { path: "data.json".into(), reason: "over 1 MiB".into() }],
        };
        assert_eq!(
            report.render(),
            "+42 −7 in 1 file · duplicates: src/a.rs:10-17 ≈ src/b.rs:40-47 (same shape) · \
             longest function touched: parse_args (src/cli.rs:12-88, 77 lines) · \
             left out: data.json (over 1 MiB)"
        );
        assert_eq!(Report::default().render(), "+0 −0 in 0 files · duplicates: none");
    }
}

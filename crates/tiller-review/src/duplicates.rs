//! Added code that repeats code elsewhere: every window of [`MIN_RUN`] comparable lines is
//! indexed by its text and by its shape, and the added windows that match are merged into
//! maximal runs.

use std::collections::HashMap;

use crate::lang::{Lang, Line, normalise};
use crate::report::Duplicate;

/// The shortest run of added lines reported as duplicated, counting only lines that
/// [`normalise`] keeps (not blank lines, comments, imports or lone braces).
pub const MIN_RUN: usize = 6;

/// Windows with fewer distinct lines than this are too repetitive to compare (tables, field
/// lists): they would match themselves shifted by a line.
const MIN_DISTINCT: usize = 3;

/// Candidates looked at per window, which bounds the work on highly repetitive code.
const MAX_CANDIDATES: usize = 64;

type Key<'d> = [&'d str; MIN_RUN];

/// One file's comparable lines, and which of them the change added.
pub(crate) struct Doc<'a> {
    path: &'a str,
    lines: Vec<Line>,
    added: Vec<bool>,
}

impl<'a> Doc<'a> {
    /// `added`: the numbers of the lines the change added, ascending.
    pub(crate) fn new(lang: Lang, path: &'a str, text: &str, added: &[u32]) -> Self {
        let lines = normalise(lang, text);
        let added = lines.iter().map(|l| added.binary_search(&l.number).is_ok()).collect();
        Doc { path, lines, added }
    }

    fn windows(&self) -> usize {
        (self.lines.len() + 1).saturating_sub(MIN_RUN)
    }

    /// Line `i` as compared: its text, or its shape.
    fn line(&self, i: usize, shape: bool) -> &str {
        let line = &self.lines[i];
        if shape { &line.shape } else { &line.text }
    }

    fn key(&self, i: usize, shape: bool) -> Key<'_> {
        std::array::from_fn(|k| self.line(i + k, shape))
    }

    fn added_in(&self, i: usize) -> &[bool] {
        &self.added[i..i + MIN_RUN]
    }
}

/// Where a window is repeated: window `at` of doc `doc`.
#[derive(Clone, Copy)]
struct Hit {
    doc: usize,
    at: usize,
    shape: bool,
}

/// The runs of added lines in `docs` that repeat code elsewhere in `docs`. Docs without added
/// lines stand for the rest of the repository; put them first, so that theirs are the copies named.
pub(crate) fn find(docs: &[Doc]) -> Vec<Duplicate> {
    let mut index: [HashMap<Key, Vec<(usize, usize)>>; 2] = Default::default();
    for (d, doc) in docs.iter().enumerate() {
        for i in 0..doc.windows() {
            for shape in [false, true] {
                let key = doc.key(i, shape);
                let mut distinct = key.to_vec();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() >= MIN_DISTINCT {
                    index[shape as usize].entry(key).or_default().push((d, i));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (d, doc) in docs.iter().enumerate().filter(|(_, doc)| doc.added.contains(&true)) {
        let hits: Vec<Option<Hit>> = (0..doc.windows())
            .map(|i| {
                let added = doc.added_in(i).iter().all(|&a| a);
                if added { best(&index, docs, d, i) } else { None }
            })
            .collect();
        let mut i = 0;
        while i < hits.len() {
            let Some(hit) = hits[i] else {
                i += 1;
                continue;
            };
            let last = i + hits[i..].iter().take_while(|h| h.is_some()).count() - 1;
            out.push(run(docs, d, i, last, hit));
            i = last + 1;
        }
    }
    out
}

/// Where window `i` of `docs[d]` is repeated: the same text if anywhere, else the same shape.
/// Of two added copies, only the later is the duplicate.
fn best(
    index: &[HashMap<Key, Vec<(usize, usize)>>; 2],
    docs: &[Doc],
    d: usize,
    i: usize,
) -> Option<Hit> {
    let valid = |&&(e, j): &&(usize, usize)| {
        let overlaps = e == d && i.abs_diff(j) < MIN_RUN;
        !overlaps && (!docs[e].added_in(j).contains(&true) || (e, j) < (d, i))
    };
    [false, true].into_iter().find_map(|shape| {
        let candidates = index[shape as usize].get(&docs[d].key(i, shape))?;
        let &(doc, at) = candidates.iter().take(MAX_CANDIDATES).find(valid)?;
        Some(Hit { doc, at, shape })
    })
}

/// The duplicate made of windows `first..=last` of `docs[d]`, the first of which repeats at
/// `hit`: the other copy runs on as long as its lines keep matching and the copies stay apart.
fn run(docs: &[Doc], d: usize, first: usize, last: usize, hit: Hit) -> Duplicate {
    let (doc, other) = (&docs[d], &docs[hit.doc]);
    let end = last + MIN_RUN - 1;
    let apart = |len: usize| hit.doc != d || first.min(hit.at) + len < first.max(hit.at);
    let mut len = MIN_RUN;
    while first + len <= end
        && hit.at + len < other.lines.len()
        && apart(len)
        && doc.line(first + len, hit.shape) == other.line(hit.at + len, hit.shape)
    {
        len += 1;
    }
    Duplicate {
        path: doc.path.to_string(),
        lines: [doc.lines[first].number, doc.lines[end].number],
        other_path: other.path.to_string(),
        other_lines: [other.lines[hit.at].number, other.lines[hit.at + len - 1].number],
        same_shape: hit.shape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "fn total(items: &[Item]) -> u32 {
    let mut sum = 0;
    for item in items {
        if item.active {
            sum += item.price * 2;
        }
    }
    log(\"total\", sum);
    sum
}
";

    /// `ORIGINAL` with its names changed: the same shape, not the same text.
    const RENAMED: &str = "fn count(rows: &[Row]) -> u32 {
    let mut n = 0;
    for row in rows {
        if row.visible {
            n += row.weight * 3;
        }
    }
    log(\"count\", n);
    n
}
";

    /// A doc whose lines are all added.
    fn added<'a>(path: &'a str, text: &str) -> Doc<'a> {
        let all: Vec<u32> = (1..=text.lines().count() as u32).collect();
        Doc::new(Lang::Rust, path, text, &all)
    }

    fn kept<'a>(path: &'a str, text: &str) -> Doc<'a> {
        Doc::new(Lang::Rust, path, text, &[])
    }

    /// Path and lines, other path and lines, same shape.
    type Seen<'a> = (&'a str, [u32; 2], &'a str, [u32; 2], bool);

    fn spans(dups: &[Duplicate]) -> Vec<Seen<'_>> {
        dups.iter()
            .map(|d| (d.path.as_str(), d.lines, d.other_path.as_str(), d.other_lines, d.same_shape))
            .collect()
    }

    #[test]
    fn an_identical_run_is_found_with_its_other_copy() {
        let text = format!("fn other() {{}}\n\n{ORIGINAL}");
        let docs = [kept("src/a.rs", ORIGINAL), added("src/b.rs", &text)];
        assert_eq!(spans(&find(&docs)), [("src/b.rs", [3, 11], "src/a.rs", [1, 9], false)]);
    }

    #[test]
    fn a_renamed_run_has_the_same_shape() {
        let docs = [kept("a.rs", ORIGINAL), added("b.rs", RENAMED)];
        assert_eq!(spans(&find(&docs)), [("b.rs", [1, 9], "a.rs", [1, 9], true)]);
    }

    #[test]
    fn the_same_text_is_preferred_to_the_same_shape() {
        let docs = [kept("a.rs", RENAMED), kept("c.rs", ORIGINAL), added("b.rs", ORIGINAL)];
        assert_eq!(spans(&find(&docs)), [("b.rs", [1, 9], "c.rs", [1, 9], false)]);
    }

    #[test]
    fn five_lines_are_not_enough() {
        let five = "let a = f(1);\nlet b = g(a);\nh(a, b);\nif a > b { k(); }\nreturn m(b);\n";
        let docs = [kept("a.rs", five), added("b.rs", &format!("x();\n{five}y();\n"))];
        assert_eq!(find(&docs), []);
    }

    #[test]
    fn blank_and_brace_lines_do_not_count_either_way() {
        // The copy is spaced and braced differently: still the same six lines.
        let spaced = ORIGINAL.replace("        }\n", "\n        }\n\n");
        let docs = [kept("a.rs", ORIGINAL), added("b.rs", &spaced)];
        assert_eq!(find(&docs).len(), 1);
        // Five code lines padded with braces to eight lines are still five.
        let five = "if a {\n    b(1);\n}\nc(2);\n{\nd(3);\n}\ne(4);\n";
        let docs = [kept("a.rs", five), added("b.rs", five)];
        assert_eq!(find(&docs), []);
    }

    #[test]
    fn a_copy_within_the_added_code_counts_once() {
        let text = format!("{ORIGINAL}\n{ORIGINAL}");
        let docs = [added("b.rs", &text)];
        assert_eq!(spans(&find(&docs)), [("b.rs", [12, 20], "b.rs", [1, 9], false)]);
    }

    #[test]
    fn a_copy_of_the_files_own_unchanged_part_counts() {
        let text = format!("{ORIGINAL}{RENAMED}");
        let added_lines: Vec<u32> = (11..=20).collect();
        let docs = [Doc::new(Lang::Rust, "b.rs", &text, &added_lines)];
        assert_eq!(spans(&find(&docs)), [("b.rs", [11, 19], "b.rs", [1, 9], true)]);
    }

    #[test]
    fn repetitive_runs_do_not_match_themselves() {
        let table: String = (0..20).map(|i| format!("let v{i} = w{i} + {i};\n")).collect();
        assert_eq!(find(&[added("t.rs", &table)]), []);
    }

    #[test]
    fn unchanged_code_is_never_reported() {
        let docs = [kept("a.rs", ORIGINAL), kept("b.rs", ORIGINAL)];
        assert_eq!(find(&docs), []);
    }
}

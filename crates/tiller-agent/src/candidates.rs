//! Candidate edits checked by the project's tests: each written into a scratch copy of the
//! workspace, the failing tests and then the suite run there, and the passing candidate with the
//! smallest change chosen. The tests are run by a [`Checker`], which a caller above the agent
//! provides (the verified loops' runner of the project's commands, confined by the sandbox).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use serde_json::json;
use tiller_tools::{
    FileList, Registry, SuiteResult, ToolOutput, Workspace, apply_changes, explain,
};
use tiller_types::{Cancel, ChangeKind, ChangeSet, ToolCall};

/// Runs the project's tests in a directory that holds a copy of the workspace.
pub trait Checker: Send + Sync {
    /// Runs the tests named in `failing` (alone, where the project can run one test) and, when
    /// they pass, the whole suite, in `dir`, stopping them when `cancel` is set. `Err` says why
    /// the tests could not run at all.
    fn check(&self, dir: &Path, failing: &[String], cancel: &Cancel)
    -> Result<SuiteResult, String>;

    /// How many checks may run at once, each in a directory of its own.
    fn workers(&self) -> usize {
        1
    }
}

/// What checking a candidate found.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// The tests pass with it.
    Passes,
    /// The tests fail with it: the end of their output.
    Fails(String),
    /// It is no edit that applies (wrong arguments, text not in the file): why.
    Invalid(String),
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Passes => "passes",
            Verdict::Fails(_) => "fails",
            Verdict::Invalid(_) => "invalid",
        }
    }
}

/// One candidate edit and its verdict.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub call: ToolCall,
    /// The change it makes, when it applies.
    pub changes: Option<ChangeSet>,
    pub verdict: Verdict,
}

impl Candidate {
    /// Lines added plus removed.
    pub fn size(&self) -> usize {
        self.changes.as_ref().map_or(usize::MAX, size)
    }

    /// The ledger's record of it.
    pub fn note(&self, step: u32, index: usize) -> serde_json::Value {
        let arguments = serde_json::from_str(&self.call.arguments)
            .unwrap_or_else(|_| json!(self.call.arguments));
        let detail = match &self.verdict {
            Verdict::Passes => None,
            Verdict::Fails(why) | Verdict::Invalid(why) => Some(why),
        };
        json!({
            "step": step, "index": index, "tool": self.call.name, "arguments": arguments,
            "verdict": self.verdict.name(), "detail": detail,
            "changed_lines": self.changes.is_some().then(|| self.size()),
        })
    }
}

/// Bytes of a failing candidate's test output kept for the model.
const FAILURE_BYTES: usize = 300;

/// Checks `calls` (edit tool calls) in scratch copies of `ws`, as many at once as `checker`
/// runs, the smallest change first, until one passes or `cancel` is set: the candidates not
/// reached by then are left out, and so are those that make a change `failed` holds.
/// Candidates that make the same change are checked once.
pub(crate) fn check(
    tools: &Registry,
    ws: &Workspace,
    calls: Vec<ToolCall>,
    checker: &dyn Checker,
    failing: &[String],
    failed: &HashSet<u64>,
    cancel: &Cancel,
) -> Result<Vec<Candidate>, String> {
    let mut edits: Vec<(ToolCall, Result<ChangeSet, String>)> = calls
        .into_iter()
        .map(|call| {
            let changes = edit(tools, ws, &call);
            (call, changes)
        })
        .filter(|(_, changes)| changes.as_ref().map_or(true, |c| !failed.contains(&fingerprint(c))))
        .collect();
    edits.sort_by_key(|(_, changes)| changes.as_ref().map_or(usize::MAX, size));
    // Each edit that makes a change an edit before it makes takes that one's verdict.
    let mut first_of = std::collections::HashMap::new();
    let same_as: Vec<Option<usize>> = (edits.iter().enumerate())
        .map(|(i, (_, changes))| {
            let changes = changes.as_ref().ok()?;
            let first = *first_of.entry(fingerprint(changes)).or_insert(i);
            (first != i).then_some(first)
        })
        .collect();
    let verdicts: Vec<OnceLock<Verdict>> = edits.iter().map(|_| OnceLock::new()).collect();
    let (next, passed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let scratches = (0..checker.workers().clamp(1, edits.len().max(1)))
        .map(|_| Scratch::copy(ws))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|threads| {
        for mut scratch in scratches {
            let (edits, same_as, verdicts) = (&edits, &same_as, &verdicts);
            let (next, passed) = (&next, &passed);
            threads.spawn(move || {
                while !cancel.is_cancelled() && !passed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= edits.len() {
                        break;
                    }
                    if same_as[i].is_some() {
                        continue;
                    }
                    let verdict = match &edits[i].1 {
                        Err(why) => Verdict::Invalid(why.clone()),
                        Ok(changes) => scratch.verdict(changes, checker, failing, cancel),
                    };
                    passed.fetch_or(verdict == Verdict::Passes, Ordering::Relaxed);
                    let _ = verdicts[i].set(verdict);
                }
            });
        }
    });
    let reached = next.load(Ordering::Relaxed);
    let checked = edits.into_iter().enumerate().filter_map(|(i, (call, changes))| {
        let verdict = verdicts[same_as[i].unwrap_or(i)].get().filter(|_| i < reached)?;
        Some(Candidate { call, changes: changes.ok(), verdict: verdict.clone() })
    });
    Ok(checked.collect())
}

/// What tells a change from another made to the same files: the paths and what they become.
pub(crate) fn fingerprint(changes: &ChangeSet) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for file in &changes.files {
        (&file.path, &file.new).hash(&mut hasher);
    }
    hasher.finish()
}

/// Lines a change adds plus those it removes.
fn size(changes: &ChangeSet) -> usize {
    let (added, removed) = changes.line_counts();
    added + removed
}

/// Similarity (0 to 1, by characters) above which a new line is taken to be an old one
/// rewritten.
const SAME_LINE: f32 = 0.6;

/// The smaller edits inside a rewrite of the lines `old` into `new`, each with the rest of the
/// lines as they were: every block of lines changed, alone, and every line rewritten (a new line
/// much like an old one in the same block), alone; blank lines added or removed are no part. A
/// small model often writes the line at fault right and breaks another.
pub(crate) fn parts(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &a, &b);
    let with = |from: std::ops::Range<usize>, lines: &[&str]| {
        [&a[..from.start], lines, &a[from.end..]].concat().join("\n")
    };
    let mut out: Vec<String> = Vec::new();
    let blank = |lines: &[&str]| lines.iter().all(|l| l.trim().is_empty());
    for op in ops.iter().filter(|op| op.tag() != similar::DiffTag::Equal) {
        let (from, to) = (op.old_range(), op.new_range());
        if blank(&a[from.clone()]) && blank(&b[to.clone()]) {
            continue;
        }
        out.push(with(from.clone(), &b[to.clone()]));
        for i in from {
            for j in to.clone() {
                if similar::TextDiff::from_chars(a[i], b[j]).ratio() >= SAME_LINE {
                    out.push(with(i..i + 1, &b[j..j + 1]));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| p != new && p != old && seen.insert(p.clone()));
    out
}

/// Pairs of the one-line changes of lines `old` in `singles` (each `old` with one line written
/// otherwise, most likely first), each pair on two different lines made together: at most `n`,
/// those of the likeliest pairs (by the sum of their ranks) first. A fix of two lines is two
/// lines the model ranks likely, each alone no fix.
pub(crate) fn pairs(old: &str, singles: &[String], n: usize) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let changed: Vec<(usize, &str)> = singles
        .iter()
        .filter_map(|new| {
            let b: Vec<&str> = new.lines().collect();
            let mut diff = (0..a.len()).filter(|&i| b.len() == a.len() && a[i] != b[i]);
            match (diff.next(), diff.next()) {
                (Some(i), None) => Some((i, b[i])),
                _ => None,
            }
        })
        .collect();
    let mut ranked: Vec<(usize, usize)> =
        (0..changed.len()).flat_map(|j| (0..j).map(move |i| (i, j))).collect();
    ranked.sort_by_key(|&(i, j)| (i + j, i));
    let apart = ranked.into_iter().filter(|&(i, j)| changed[i].0 != changed[j].0);
    let joined = apart.map(|(i, j)| {
        let ((x, one), (y, other)) = (changed[i], changed[j]);
        let mut lines = a.clone();
        (lines[x], lines[y]) = (one, other);
        lines.join("\n")
    });
    joined.take(n).collect()
}

/// The passing candidate with the smallest change, the first of equals.
pub(crate) fn best(candidates: &[Candidate]) -> Option<&Candidate> {
    let passing = candidates.iter().filter(|c| c.verdict == Verdict::Passes);
    passing.min_by_key(|c| c.size())
}

/// Distinct changes a report shows, at most; the smallest come first.
const REPORTED: usize = 3;

/// What the model is told when no candidate passes: the first [`REPORTED`] distinct changes,
/// compactly, and how the tests failed with each.
pub(crate) fn report(candidates: &[Candidate]) -> String {
    let mut out = format!(
        "Not applied: {} candidate edits were tried in a scratch copy and none made the tests \
         pass. Try a different change.\n",
        candidates.len()
    );
    let mut seen: Vec<Option<&ChangeSet>> = Vec::new();
    for candidate in candidates {
        let changes = candidate.changes.as_ref();
        if changes.is_some() && seen.contains(&changes) {
            continue;
        }
        if seen.len() == REPORTED {
            break;
        }
        seen.push(changes);
        let what = candidate.changes.as_ref().map_or_else(
            || tiller_types::text::clip_middle(&candidate.call.arguments, 160).into_owned(),
            summary,
        );
        let why = match &candidate.verdict {
            Verdict::Passes => "passes".to_string(),
            Verdict::Fails(why) => format!("tests fail: {why}"),
            Verdict::Invalid(why) => format!("does not apply: {why}"),
        };
        out.push_str(&format!("- {what}\n  {}\n", why.trim().replace('\n', "\n  ")));
    }
    out
}

/// The lines a change removes and adds, as `-old` / `+new`.
fn summary(changes: &ChangeSet) -> String {
    let mut lines = Vec::new();
    for file in &changes.files {
        for hunk in &file.hunks {
            lines.extend(hunk.removed.iter().map(|l| format!("-{l}")));
            lines.extend(hunk.added.iter().map(|l| format!("+{l}")));
        }
    }
    let paths: Vec<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
    tiller_types::text::clip_middle(&format!("{}: {}", paths.join(", "), lines.join(" ")), 240)
        .into_owned()
}

/// The change an edit call makes, without writing it; `Err` is why it makes none.
fn edit(tools: &Registry, ws: &Workspace, call: &ToolCall) -> Result<ChangeSet, String> {
    let tool = tools.get(&call.name).ok_or_else(|| format!("no tool named `{}`", call.name))?;
    let args = serde_json::from_str(&call.arguments).map_err(|e| format!("bad JSON: {e}"))?;
    match tool.run(ws, args).map_err(|e| explain(ws, &e))? {
        ToolOutput::Change(changes) if !changes.files.is_empty() => Ok(changes),
        _ => Err("it changes nothing".into()),
    }
}

/// A copy of the workspace's files in a temporary directory.
struct Scratch {
    _dir: tempfile::TempDir,
    ws: Workspace,
    /// Where the copies came from.
    from: PathBuf,
    /// Each file copied, with its stamp as copied.
    files: Vec<(String, Stamp)>,
}

/// A file's length, time of change and inode, which tell whether a candidate or a run wrote
/// it. The time alone cannot: a write in the same tick of the file system's clock as the copy
/// keeps it, and a candidate is written the moment the one before is put back. Writing a
/// candidate replaces the file (a new inode); a run that writes in place does so a process
/// start after the copy.
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?, meta.ino()))
}

impl Scratch {
    /// Copies the files the workspace lists (gitignore-aware, withheld files left out).
    fn copy(ws: &Workspace) -> Result<Scratch, String> {
        let list = FileList::scan(ws);
        if list.truncated {
            return Err("the workspace is too large to copy for each candidate".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("tiller-candidates-")
            .tempdir()
            .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
        let scratch = Workspace::new(dir.path()).map_err(|e| e.to_string())?;
        let mut scratch =
            Scratch { _dir: dir, ws: scratch, from: ws.root().to_path_buf(), files: Vec::new() };
        for file in list.files {
            let to = scratch.ws.root().join(&file);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::copy(scratch.from.join(&file), &to).map_err(|e| format!("{file}: {e}"))?;
            scratch.files.push((file, stamp(&to)));
        }
        Ok(scratch)
    }

    /// Writes `changes`, runs the tests, and puts the files back as they were: those the
    /// change adds are removed, and every file the change or the run wrote (a test may write
    /// over another, or over itself) is copied again.
    fn verdict(
        &mut self,
        changes: &ChangeSet,
        checker: &dyn Checker,
        failing: &[String],
        cancel: &Cancel,
    ) -> Verdict {
        let result = match apply_changes(&self.ws, changes, &changes.accept_all()) {
            Ok(_) => Ok(checker.check(self.ws.root(), failing, cancel)),
            Err(e) => Err(Verdict::Invalid(e.to_string())),
        };
        for file in &changes.files {
            let added = match &file.kind {
                ChangeKind::Move { to } => Some(to),
                _ => file.old.is_none().then_some(&file.path),
            };
            // The copy is ours and in a temporary directory: a file not put back only spoils
            // the verdicts of later candidates, which then fail.
            let _ = added.map(|path| std::fs::remove_file(self.ws.root().join(path)));
        }
        for (file, copied) in &mut self.files {
            let to = self.ws.root().join(&*file);
            if stamp(&to) != *copied {
                let _ = std::fs::copy(self.from.join(&*file), &to);
                *copied = stamp(&to);
            }
        }
        match result {
            Err(invalid) => invalid,
            Ok(Ok(result)) if result.green() => Verdict::Passes,
            Ok(Ok(result)) => Verdict::Fails(result.excerpt(FAILURE_BYTES)),
            Ok(Err(why)) => Verdict::Fails(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes when `greet.py` in the directory says "Hello, ".
    struct Grep;

    impl Checker for Grep {
        fn check(&self, dir: &Path, _: &[String], _: &Cancel) -> Result<SuiteResult, String> {
            let text = std::fs::read_to_string(dir.join("greet.py")).map_err(|e| e.to_string())?;
            let success = text.contains("Hello, ");
            Ok(SuiteResult {
                success,
                output: format!("greet.py: {text}"),
                ..SuiteResult::default()
            })
        }
    }

    /// The code every candidate here edits.
    const GREET: &str = "def greet(name):\n    return \"Hello\"\n";

    /// A workspace holding [`GREET`] as `greet.py`, and the directory that keeps it.
    fn greet_workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greet.py"), GREET).unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        (dir, ws)
    }

    fn replace(id: &str, new: &str) -> ToolCall {
        let arguments = json!({"path": "greet.py", "old": "    return \"Hello\"", "new": new});
        ToolCall { id: id.into(), name: "replace".into(), arguments: arguments.to_string() }
    }

    #[test]
    fn the_smallest_change_is_checked_first_and_the_first_to_pass_is_chosen() {
        let (dir, ws) = greet_workspace();
        let bad_json = ToolCall { id: "e".into(), name: "replace".into(), arguments: "{".into() };
        let calls = vec![
            replace("b", "    x = 1\n    return \"Hello, \" + name"),
            replace("a", "    return \"Hi\""),
            replace("d", "    return \"Hi\""),
            replace("c", "    return \"Hello, \" + name"),
            bad_json.clone(),
        ];
        let (tools, cancel) = (Registry::default(), Cancel::default());
        let checked = check(&tools, &ws, calls, &Grep, &[], &HashSet::new(), &cancel).unwrap();
        let verdicts: Vec<(&str, &str)> =
            checked.iter().map(|c| (c.call.id.as_str(), c.verdict.name())).collect();
        assert_eq!(verdicts, [("a", "fails"), ("d", "fails"), ("c", "passes")], "b not checked");
        assert_eq!(best(&checked).unwrap().call.id, "c");
        assert_eq!(std::fs::read_to_string(dir.path().join("greet.py")).unwrap(), GREET);

        let calls = vec![checked[0].call.clone(), checked[1].call.clone(), bad_json];
        let failed = check(&tools, &ws, calls, &Grep, &[], &HashSet::new(), &cancel).unwrap();
        assert!(best(&failed).is_none());
        let report = report(&failed);
        assert!(report.starts_with("Not applied: 3 candidate edits"), "{report}");
        assert_eq!(
            report.matches("+    return \"Hi\"").count(),
            1,
            "the same change once: {report}"
        );
        assert!(report.contains("does not apply: bad JSON"), "{report}");
    }

    #[test]
    fn the_parts_of_a_rewrite_are_its_blocks_and_rewritten_lines_alone() {
        let old = "def chunks(xs, n):\n    out = []\n    for i in range(0, len(xs), n - 1):\n        out.append(xs[i:i + n])\n    return out";
        let new = "def chunks(xs, n):\n\n    out = []\n    for i in range(0, len(xs), n):\n        with open('f') as f:\n            out.append(f)\n    return out";
        let parts = parts(old, new);
        let right = old.replace("n - 1)", "n)");
        assert!(parts.contains(&right), "the loop's line alone: {parts:#?}");
        assert!(!parts.iter().any(|p| p == new || p == old));
        assert!(!parts.iter().any(|p| p.starts_with("def chunks(xs, n):\n\n")), "{parts:#?}");
        assert_eq!(parts.len(), parts.iter().collect::<std::collections::BTreeSet<_>>().len());
        assert!(super::parts(old, &right).is_empty(), "one line changed: nothing smaller");
    }

    #[test]
    fn pairs_join_two_one_line_changes_on_different_lines_likeliest_first() {
        let old = "a\nb\nc";
        let singles: Vec<String> =
            ["A\nb\nc", "a\nB\nc", "x\nb\nc", "a\nb\nC", "A\nB\nc"].map(String::from).into();
        let pairs = pairs(old, &singles, 10);
        assert_eq!(pairs, ["A\nB\nc", "A\nb\nC", "x\nB\nc", "a\nB\nC", "x\nb\nC"]);
        assert_eq!(super::pairs(old, &singles, 2), ["A\nB\nc", "A\nb\nC"]);
        assert!(super::pairs(old, &singles[..1], 4).is_empty());
    }

    /// Fails while `guard.txt` holds text; a run of a candidate that says "vandal" empties it,
    /// as a test run that writes over the tests would.
    struct Vandal;

    impl Checker for Vandal {
        fn check(&self, dir: &Path, _: &[String], _: &Cancel) -> Result<SuiteResult, String> {
            let code = std::fs::read_to_string(dir.join("greet.py")).map_err(|e| e.to_string())?;
            let guard = std::fs::read_to_string(dir.join("guard.txt")).unwrap_or_default();
            if code.contains("vandal") {
                std::fs::write(dir.join("guard.txt"), "").map_err(|e| e.to_string())?;
            }
            let output = format!("guard: {guard:?}");
            Ok(SuiteResult { success: guard.is_empty(), output, ..SuiteResult::default() })
        }
    }

    #[test]
    fn what_a_candidates_run_writes_is_put_back_before_the_next() {
        let (dir, ws) = greet_workspace();
        std::fs::write(dir.path().join("guard.txt"), "keep").unwrap();
        let calls = vec![replace("a", "    return \"vandal\""), replace("b", "    return \"Hi\"")];
        let (tools, cancel) = (Registry::default(), Cancel::default());
        let checked = check(&tools, &ws, calls, &Vandal, &[], &HashSet::new(), &cancel).unwrap();
        let verdicts: Vec<&str> = checked.iter().map(|c| c.verdict.name()).collect();
        assert_eq!(verdicts, ["fails", "fails"], "{checked:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join("guard.txt")).unwrap(), "keep");
    }

    /// Candidates the length of the line they replace, each written the moment the one before
    /// is put back (within one tick of the file system's clock): each still finds the file as
    /// it was.
    #[test]
    fn a_candidate_as_long_as_the_original_is_put_back_too() {
        let (_dir, ws) = greet_workspace();
        let calls = ["Hallo", "Hullo", "Jello", "Hellu", "Hells"]
            .map(|word| replace(word, &format!("    return \"{word}\"")))
            .to_vec();
        let (tools, cancel) = (Registry::default(), Cancel::default());
        let checked = check(&tools, &ws, calls, &Grep, &[], &HashSet::new(), &cancel).unwrap();
        let verdicts: Vec<&str> = checked.iter().map(|c| c.verdict.name()).collect();
        assert_eq!(verdicts, ["fails"; 5], "{checked:?}");
    }

    /// [`Grep`] two at a time, each check long enough to overlap another: counts the checks
    /// that ran at once.
    #[derive(Default)]
    struct TwoAtOnce {
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl Checker for TwoAtOnce {
        fn check(&self, dir: &Path, failing: &[String], c: &Cancel) -> Result<SuiteResult, String> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            let result = Grep.check(dir, failing, c);
            self.running.fetch_sub(1, Ordering::SeqCst);
            result
        }

        fn workers(&self) -> usize {
            2
        }
    }

    #[test]
    fn candidates_are_checked_as_many_at_once_as_the_checker_runs_each_in_its_own_copy() {
        let (dir, ws) = greet_workspace();
        let mut calls: Vec<ToolCall> =
            (0..6).map(|i| replace(&format!("f{i}"), &format!("    return \"Hi{i}\""))).collect();
        calls.push(replace("pass", "    return \"Hello, \" + name"));
        let (tools, cancel, checker) =
            (Registry::default(), Cancel::default(), TwoAtOnce::default());
        let checked = check(&tools, &ws, calls, &checker, &[], &HashSet::new(), &cancel).unwrap();
        assert_eq!(checker.most.load(Ordering::SeqCst), 2);
        let verdicts: Vec<String> =
            checked.iter().map(|c| format!("{} {}", c.call.id, c.verdict.name())).collect();
        let mut expected: Vec<String> = (0..6).map(|i| format!("f{i} fails")).collect();
        expected.push("pass passes".into());
        assert_eq!(verdicts, expected, "each in its own copy");
        assert_eq!(std::fs::read_to_string(dir.path().join("greet.py")).unwrap(), GREET);
    }

    /// Cancels the run as it checks its first candidate.
    struct CancelsAtOnce;

    impl Checker for CancelsAtOnce {
        fn check(&self, _: &Path, _: &[String], cancel: &Cancel) -> Result<SuiteResult, String> {
            cancel.cancel();
            Ok(SuiteResult::default())
        }
    }

    #[test]
    fn no_candidate_is_checked_once_the_run_is_cancelled() {
        let (_dir, ws) = greet_workspace();
        let calls = vec![replace("a", "    return 1"), replace("b", "    return 2")];
        let cancel = Cancel::default();
        let checked =
            check(&Registry::default(), &ws, calls, &CancelsAtOnce, &[], &HashSet::new(), &cancel)
                .unwrap();
        let ids: Vec<&str> = checked.iter().map(|c| c.call.id.as_str()).collect();
        assert_eq!(ids, ["a"], "the second is not checked");
    }
}

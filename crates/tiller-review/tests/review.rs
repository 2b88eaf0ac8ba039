//! Reports of git ranges, computed from real temporary repositories.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use tiller_git::trap::{Attack, Trap, rerun};
use tiller_review::{FileState, Report, ReviewError, report_files, report_range};

const LIB: &str = "fn total(items: &[Item]) -> u32 {
    let mut sum = 0;
    for item in items {
        if item.active {
            sum += item.price * 2;
        }
    }
    log(\"total\", sum);
    sum
}

fn tiny() -> u8 {
    1
}
";

/// `total` under other names: the same shape.
const COPY: &str = "fn count(rows: &[Row]) -> u32 {
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

struct Repo(tempfile::TempDir);

impl Repo {
    fn new() -> Repo {
        let repo = Repo(tempfile::tempdir().unwrap());
        repo.git(&["init", "-q"]);
        repo
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, files: &[(&str, &str)]) {
        files.iter().for_each(|(path, text)| self.write(path, text));
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "step"]);
    }

    fn range(&self, range: &str) -> Report {
        report_range(self.path(), range).unwrap()
    }
}

fn stats(report: &Report) -> Vec<(&str, usize, usize)> {
    report.files.iter().map(|f| (f.path.as_str(), f.added, f.removed)).collect()
}

/// A repository of two commits: `LIB`, then `COPY` added and `tiny` grown.
fn two_commits() -> Repo {
    let repo = Repo::new();
    repo.commit(&[("src/lib.rs", LIB), ("README.md", "# r\n")]);
    let grown = LIB.replace("    1\n", "    let x = 1;\n    x\n");
    repo.commit(&[("src/lib.rs", &grown), ("src/copy.rs", COPY)]);
    repo
}

#[test]
fn the_last_commit_is_reported_by_default() {
    let repo = two_commits();
    let report = repo.range("HEAD^..HEAD");
    assert_eq!(stats(&report), [("src/copy.rs", 10, 0), ("src/lib.rs", 2, 1)]);
    assert_eq!((report.added, report.removed), (12, 1));
    let dup = &report.duplicates[..];
    assert_eq!(dup.len(), 1, "{dup:?}");
    assert_eq!((dup[0].path.as_str(), dup[0].lines), ("src/copy.rs", [1, 9]));
    assert_eq!((dup[0].other_path.as_str(), dup[0].other_lines), ("src/lib.rs", [1, 9]));
    assert!(dup[0].same_shape);
    // `count` (10 lines) is touched, and longer than `tiny` (4 lines).
    let f = report.longest_function.as_ref().unwrap();
    assert_eq!(
        (f.name.as_str(), f.path.as_str(), f.lines, f.length),
        ("count", "src/copy.rs", [1, 10], 10)
    );
    assert_eq!(repo.range(""), report);
    assert_eq!(repo.range("HEAD^.."), report);
    // From a subdirectory, paths are still relative to the top.
    assert_eq!(report_range(&repo.path().join("src"), "HEAD").unwrap(), report);
}

#[test]
fn a_single_revision_is_its_own_change() {
    let repo = two_commits();
    repo.commit(&[("README.md", "# r\n\nmore\n")]);
    assert_eq!(repo.range("HEAD~1"), repo.range("HEAD~2..HEAD~1"));
    assert_eq!(stats(&repo.range("HEAD")), [("README.md", 2, 0)]);
}

#[test]
fn a_range_of_commits_sums_them_and_finds_copies_between_them() {
    let repo = Repo::new();
    repo.commit(&[("a.txt", "a\n")]);
    repo.commit(&[("src/one.rs", LIB)]);
    repo.commit(&[("src/two.rs", LIB), ("a.txt", "b\n")]);
    let first = repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    let report = repo.range(&format!("{}..HEAD", first.trim()));
    assert_eq!(stats(&report), [("a.txt", 1, 1), ("src/one.rs", 14, 0), ("src/two.rs", 14, 0)]);
    // Both copies are new: the later one is the duplicate, identical.
    let dup: Vec<_> =
        report.duplicates.iter().map(|d| (&*d.path, &*d.other_path, d.same_shape)).collect();
    assert_eq!(dup, [("src/two.rs", "src/one.rs", false)]);
    // Against the commit before, the copy is of code that was already there.
    let last = repo.range("HEAD");
    assert_eq!(last.duplicates[0].other_path, "src/one.rs");
}

#[test]
fn bad_ranges_and_places_are_errors() {
    let repo = two_commits();
    for range in ["nope..HEAD", "HEAD..nope", "HEAD~9", "--all"] {
        let err = report_range(repo.path(), range).unwrap_err();
        assert!(matches!(err, ReviewError::BadRange { .. }), "{range}: {err}");
    }
    let outside = tempfile::tempdir().unwrap();
    let err = report_range(outside.path(), "").unwrap_err();
    assert!(matches!(err, ReviewError::NotARepo { .. }), "{err}");
}

#[test]
fn a_first_commit_is_all_added_and_no_commit_is_the_working_tree() {
    let repo = Repo::new();
    repo.write("src/lib.rs", LIB);
    let unborn = repo.range("");
    assert_eq!(stats(&unborn), [("src/lib.rs", 14, 0)]);
    assert_eq!(unborn.longest_function.as_ref().map(|f| f.length), Some(10));
    repo.commit(&[]);
    assert_eq!(repo.range(""), unborn);
    assert_eq!(repo.range("HEAD"), unborn);
}

#[test]
fn pending_files_are_compared_with_the_working_tree() {
    let repo = two_commits();
    // Untracked files are part of the rest of the repository too.
    let again = LIB.replace("total", "again");
    repo.write("src/untracked.rs", &again);
    let new = format!("{COPY}\n{again}");
    let files = [FileState { path: "src/new.rs", old: None, new: Some(&new) }];
    let report = report_files(repo.path(), &files).unwrap();
    let dup: Vec<_> = report
        .duplicates
        .iter()
        .map(|d| (d.lines, &*d.other_path, d.other_lines, d.same_shape))
        .collect();
    assert_eq!(
        dup,
        [([1, 9], "src/copy.rs", [1, 9], false), ([12, 24], "src/untracked.rs", [1, 13], false)]
    );
}

/// What the front end and `tiller review` ask of a repository.
fn review_all(root: &Path) {
    let report = report_range(root, "").unwrap();
    assert_eq!(stats(&report), [("a.txt", 1, 0)]);
    report_range(root, "HEAD").unwrap();
    let file = FileState { path: "a.txt", old: Some("a\n"), new: Some("b\n") };
    report_files(root, &[file]).unwrap();
}

#[test]
fn repository_config_runs_nothing() {
    let fired: Vec<(Attack, String)> = Attack::ALL
        .into_iter()
        .filter_map(|attack| {
            let trap = Trap::new(attack).unwrap();
            review_all(&trap.root());
            Some((attack, trap.fired()?))
        })
        .collect();
    assert_eq!(fired, []);
}

#[test]
fn the_environment_cannot_point_git_elsewhere() {
    if let Some(root) = std::env::var_os("TILLER_TRAP_ROOT") {
        return review_all(Path::new(&root));
    }
    let trap = Trap::unarmed().unwrap();
    let mut vars = trap.hostile_env().unwrap();
    vars.push(("TILLER_TRAP_ROOT", trap.root().into()));
    let (passed, out) = rerun("the_environment_cannot_point_git_elsewhere", &vars).unwrap();
    assert!(passed, "{out}");
    assert_eq!(trap.fired(), None);
}

#[test]
fn files_left_out_are_named() {
    let repo = Repo::new();
    repo.commit(&[("src/lib.rs", LIB)]);
    let big = "x = 1\n".repeat(200_000);
    repo.commit(&[("data.py", &big), ("logo.bin", "\0\x01\x02")]);
    let report = repo.range("HEAD");
    assert_eq!(report.files, []);
    let left: Vec<_> =
        report.left_out.iter().map(|f| (f.path.as_str(), f.reason.as_str())).collect();
    assert_eq!(left, [("data.py", "over 1 MiB"), ("logo.bin", "binary or not UTF-8")]);
    assert!(
        report
            .render()
            .ends_with(" · left out: data.py (over 1 MiB), logo.bin (binary or not UTF-8)"),
        "{}",
        report.render()
    );
}

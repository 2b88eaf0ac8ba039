//! Tasks that are repositories: a small tree of files with a bug, the command that runs its
//! tests, which files hold the tests, and a reference fix. The built-in `bugfix` suite (one TOML
//! file per task under `suites/bugfix/`) is made of them, and `tiller eval` turns every task
//! answered by a solution file ([`Task`]) into one: the empty solution (or the stub) beside the
//! tests.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::suite::on_path;
use crate::{ProbeError, Suite, SuiteTask, Task};

/// The built-in `bugfix` suite, one TOML file per task, the file name being the task id.
const BUGFIX: &[(&str, &str)] = &[
    ("js-capitalize", include_str!("../suites/bugfix/js-capitalize.toml")),
    ("js-last-n", include_str!("../suites/bugfix/js-last-n.toml")),
    ("js-overlap", include_str!("../suites/bugfix/js-overlap.toml")),
    ("js-palindrome", include_str!("../suites/bugfix/js-palindrome.toml")),
    ("js-price", include_str!("../suites/bugfix/js-price.toml")),
    ("js-rpn", include_str!("../suites/bugfix/js-rpn.toml")),
    ("js-sum-range", include_str!("../suites/bugfix/js-sum-range.toml")),
    ("js-vowels", include_str!("../suites/bugfix/js-vowels.toml")),
    ("py-binary-search", include_str!("../suites/bugfix/py-binary-search.toml")),
    ("py-cart-discount", include_str!("../suites/bugfix/py-cart-discount.toml")),
    ("py-chunks", include_str!("../suites/bugfix/py-chunks.toml")),
    ("py-duration", include_str!("../suites/bugfix/py-duration.toml")),
    ("py-fahrenheit", include_str!("../suites/bugfix/py-fahrenheit.toml")),
    ("py-grade", include_str!("../suites/bugfix/py-grade.toml")),
    ("py-leap-year", include_str!("../suites/bugfix/py-leap-year.toml")),
    ("py-median", include_str!("../suites/bugfix/py-median.toml")),
    ("py-roman", include_str!("../suites/bugfix/py-roman.toml")),
    ("py-slug", include_str!("../suites/bugfix/py-slug.toml")),
    ("py-top-words", include_str!("../suites/bugfix/py-top-words.toml")),
    ("py-transfer", include_str!("../suites/bugfix/py-transfer.toml")),
    ("rs-area", include_str!("../suites/bugfix/rs-area.toml")),
    ("rs-clamp", include_str!("../suites/bugfix/rs-clamp.toml")),
    ("rs-digit-sum", include_str!("../suites/bugfix/rs-digit-sum.toml")),
    ("rs-fib", include_str!("../suites/bugfix/rs-fib.toml")),
    ("rs-rotate", include_str!("../suites/bugfix/rs-rotate.toml")),
    ("rs-triangle", include_str!("../suites/bugfix/rs-triangle.toml")),
    ("rs-word-count", include_str!("../suites/bugfix/rs-word-count.toml")),
    ("sh-even", include_str!("../suites/bugfix/sh-even.toml")),
    ("sh-extension", include_str!("../suites/bugfix/sh-extension.toml")),
    ("sh-join", include_str!("../suites/bugfix/sh-join.toml")),
    ("sh-kind", include_str!("../suites/bugfix/sh-kind.toml")),
    ("sh-max", include_str!("../suites/bugfix/sh-max.toml")),
    ("sh-repeat", include_str!("../suites/bugfix/sh-repeat.toml")),
];

/// A repository with a failing test, to be made to pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoTask {
    #[serde(default)]
    pub id: String,
    /// What is wrong, as a user would report it.
    pub prompt: String,
    /// The command that runs the tests (`sh -c`, in the repository's root).
    pub test: String,
    /// The files a fix must leave as they are: the tests and what runs them.
    pub test_files: Vec<String>,
    /// Every file of the repository, by path from its root.
    pub files: BTreeMap<String, String>,
    /// A fix that makes the tests pass (none for a task made from a [`Task`]).
    #[serde(default)]
    pub fix: Vec<Edit>,
}

/// One replacement in one file: `old`, found once, becomes `new`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub file: String,
    pub old: String,
    pub new: String,
}

impl SuiteTask for RepoTask {
    fn id(&self) -> &str {
        &self.id
    }
}

impl RepoTask {
    /// The repository for a task answered by a solution file: the stub (or nothing) in the
    /// language's solution file, and the tests beside it.
    pub fn from_answer(task: &Task) -> RepoTask {
        let lang = task.language;
        let (solution, tests) = (lang.solution_file(), lang.test_file());
        let exports = match lang {
            crate::Language::Javascript => " Export the function with `module.exports`.",
            crate::Language::Python | crate::Language::Sh => "",
        };
        RepoTask {
            id: task.id.clone(),
            prompt: format!(
                "{}\n\nWrite the solution in `{solution}`.{exports}",
                task.prompt.trim()
            ),
            test: format!("{} {tests}", lang.interpreter().0),
            test_files: vec![tests.into()],
            files: BTreeMap::from([
                (solution.into(), task.stub.clone().unwrap_or_default()),
                (tests.into(), task.tests.clone()),
            ]),
            fix: Vec::new(),
        }
    }

    /// Whether the test command's program is on the `PATH`; tasks without it are skipped.
    pub fn available(&self) -> bool {
        self.test.split_whitespace().next().is_some_and(on_path)
    }

    /// What the agent is asked.
    pub fn message(&self) -> String {
        let tests: Vec<String> = self.test_files.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "{}\n\nThe tests are in {}; run them with `{}`. Make them pass without changing them.",
            self.prompt.trim(),
            tests.join(", "),
            self.test
        )
    }

    /// Writes the task's files under `root` (only `which`, when given), over any there.
    pub fn write(&self, root: &Path, which: Option<&[String]>) -> Result<(), ProbeError> {
        for (path, text) in &self.files {
            if which.is_some_and(|w| !w.contains(path)) {
                continue;
            }
            let full = root.join(path);
            let io = |e| ProbeError::io(path.clone(), e);
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            std::fs::write(&full, text).map_err(io)?;
        }
        Ok(())
    }

    /// The task's files whose content under `root` is not the task's (missing ones included).
    pub fn changed(&self, root: &Path) -> Vec<String> {
        let differs = |(path, text): &(&String, &String)| {
            std::fs::read_to_string(root.join(path)).ok().as_ref() != Some(*text)
        };
        self.files.iter().filter(differs).map(|(path, _)| path.clone()).collect()
    }
}

impl Suite<RepoTask> {
    /// The project's own suite of repositories to fix.
    pub fn bugfix() -> Result<Suite<RepoTask>, ProbeError> {
        let tasks = BUGFIX.iter().map(|(id, text)| {
            let mut task: RepoTask = toml::from_str(text).map_err(|e| ProbeError::SuiteFile {
                path: format!("suites/bugfix/{id}.toml").into(),
                detail: e.to_string(),
            })?;
            task.id = (*id).into();
            Ok(task)
        });
        Ok(Suite::new("bugfix", tasks.collect::<Result<_, ProbeError>>()?))
    }

    /// A suite of answered tasks as repositories, with its name and version.
    pub fn from_answers(suite: &Suite) -> Suite<RepoTask> {
        Suite {
            name: suite.name.clone(),
            version: suite.version.clone(),
            tasks: suite.tasks.iter().map(RepoTask::from_answer).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grade, Grader};
    use tiller_repomap::RepoMap;

    /// The files of `task` with its reference fix applied, each `old` found exactly once.
    fn fixed(task: &RepoTask) -> RepoTask {
        let mut fixed = task.clone();
        for edit in &task.fix {
            let text = fixed.files.get_mut(&edit.file).unwrap();
            assert_eq!(text.matches(&edit.old).count(), 1, "{}: {}", task.id, edit.old);
            *text = text.replace(&edit.old, &edit.new);
        }
        fixed
    }

    #[test]
    fn every_bug_fails_its_tests_and_its_reference_fix_passes_them() {
        let suite = Suite::bugfix().unwrap();
        assert!(suite.tasks.len() >= 30);
        let grader = Grader::unconfined();
        for task in &suite.tasks {
            assert!(!task.fix.is_empty(), "{}", task.id);
            for file in task.fix.iter().map(|e| &e.file).chain(&task.test_files) {
                assert!(task.files.contains_key(file), "{}: {file}", task.id);
            }
            assert!(task.fix.iter().all(|e| !task.test_files.contains(&e.file)), "{}", task.id);
            if !task.available() {
                eprintln!("skipping {}: `{}` needs a missing program", task.id, task.test);
                continue;
            }
            for (repo, want) in [(task, Grade::TestFailure), (&fixed(task), Grade::Pass)] {
                let dir = tempfile::tempdir().unwrap();
                repo.write(dir.path(), None).unwrap();
                assert_eq!(repo.changed(dir.path()), Vec::<String>::new());
                let graded = grader.check(repo, dir.path()).unwrap();
                assert_eq!(graded.outcome, want, "{}: {:?}", task.id, graded.detail);
            }
        }
    }

    #[test]
    fn the_map_of_each_repository_from_its_task_alone_holds_the_file_to_fix() {
        let suite = Suite::bugfix().unwrap();
        let mapped: Vec<&RepoTask> =
            suite.tasks.iter().filter(|t| RepoMap::maps(&t.fix[0].file)).collect();
        assert!(mapped.len() >= 25, "Rust, Python and JavaScript tasks");
        for task in mapped {
            let map = RepoMap::new(task.files.iter().map(|(p, t)| (p.as_str(), t.as_str())));
            let map = map.render(&task.prompt, &[], 400);
            let header = format!("{}:", task.fix[0].file);
            assert!(map.lines().any(|l| l == header), "{}: {map}", task.id);
        }
    }

    #[test]
    fn a_changed_test_file_is_caught_and_restored() {
        let suite = Suite::bugfix().unwrap();
        let task = fixed(suite.tasks.iter().find(|t| t.id == "sh-max").unwrap());
        let dir = tempfile::tempdir().unwrap();
        task.write(dir.path(), None).unwrap();
        std::fs::write(dir.path().join("test.sh"), "exit 0\n").unwrap();
        std::fs::remove_file(dir.path().join("mathlib.sh")).unwrap();
        assert_eq!(task.changed(dir.path()), ["mathlib.sh", "test.sh"]);
        let graded = Grader::unconfined().check(&task, dir.path()).unwrap();
        assert_eq!(graded.outcome, Grade::TestsEdited);
        assert_eq!(task.changed(dir.path()), ["mathlib.sh"], "the tests are written back");
    }

    #[test]
    fn an_answered_task_becomes_a_repository() {
        let suite = Suite::from_answers(&Suite::basic().unwrap());
        let roman = suite.tasks.iter().find(|t| t.id == "py-roman").unwrap();
        assert_eq!(roman.test, "python3 test_solution.py");
        assert_eq!(roman.files.keys().collect::<Vec<_>>(), ["solution.py", "test_solution.py"]);
        assert!(roman.message().contains("Write the solution in `solution.py`."));
        assert!(roman.message().ends_with(
            "The tests are in `test_solution.py`; run them with `python3 test_solution.py`. \
             Make them pass without changing them."
        ));
        assert_eq!(suite.version, Suite::basic().unwrap().version);
    }
}

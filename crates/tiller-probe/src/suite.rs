//! Task suites: the project's own `tiller-basic` (files under `suites/basic/`, built in) and
//! `humaneval`, read from the `HumanEval.jsonl.gz` that `scripts/fetch-suite humaneval` installs.
//! A suite's version is the SHA-256 of its tasks as JSON, so that trials of changed tasks are
//! never compared as if they were the same.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tiller_ledger::sha256_hex;

use crate::ProbeError;

/// The built-in suite, one TOML file per task, the file name being the task id.
const BASIC: &[(&str, &str)] = &[
    ("py-run-length", include_str!("../suites/basic/py-run-length.toml")),
    ("py-roman", include_str!("../suites/basic/py-roman.toml")),
    ("py-top-words", include_str!("../suites/basic/py-top-words.toml")),
    ("py-balanced", include_str!("../suites/basic/py-balanced.toml")),
    ("py-merge-intervals", include_str!("../suites/basic/py-merge-intervals.toml")),
    ("py-luhn", include_str!("../suites/basic/py-luhn.toml")),
    ("sh-reverse-words", include_str!("../suites/basic/sh-reverse-words.toml")),
    ("sh-count-ext", include_str!("../suites/basic/sh-count-ext.toml")),
    ("sh-clamp", include_str!("../suites/basic/sh-clamp.toml")),
    ("sh-stem", include_str!("../suites/basic/sh-stem.toml")),
    ("js-chunk", include_str!("../suites/basic/js-chunk.toml")),
    ("js-camel", include_str!("../suites/basic/js-camel.toml")),
];

/// A named, versioned list of tasks: answers to grade ([`Task`]) or repositories to fix
/// ([`RepoTask`](crate::RepoTask)).
#[derive(Clone, Debug, PartialEq)]
pub struct Suite<T = Task> {
    pub name: String,
    /// SHA-256 of the tasks as JSON.
    pub version: String,
    pub tasks: Vec<T>,
}

/// What a suite needs of its tasks.
pub trait SuiteTask: Serialize {
    fn id(&self) -> &str;
}

impl SuiteTask for Task {
    fn id(&self) -> &str {
        &self.id
    }
}

/// One programming task: what the model is asked, and the tests its answer must pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    #[serde(default)]
    pub id: String,
    pub language: Language,
    /// The function the answer must define.
    pub entry_point: String,
    pub prompt: String,
    /// The test file, which loads the answer from the language's solution file.
    pub tests: String,
    /// Code the answer completes, put before it when the answer does not define
    /// `entry_point` itself (HumanEval's prompts are such stubs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub: Option<String>,
    /// A solution that passes the tests.
    pub reference: String,
}

/// What a task's code is written in, which decides how it is checked and tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Sh,
    Javascript,
}

impl Language {
    /// The fence tags an answer's code block may carry.
    pub fn fence_tags(self) -> &'static [&'static str] {
        match self {
            Language::Python => &["python", "py", "python3"],
            Language::Sh => &["sh", "bash", "shell", "console"],
            Language::Javascript => &["javascript", "js", "node"],
        }
    }

    /// The file the answer is written to.
    pub fn solution_file(self) -> &'static str {
        match self {
            Language::Python => "solution.py",
            Language::Sh => "solution.sh",
            Language::Javascript => "solution.js",
        }
    }

    /// The file the tests are written to.
    pub fn test_file(self) -> &'static str {
        match self {
            Language::Python => "test_solution.py",
            Language::Sh => "test_solution.sh",
            Language::Javascript => "test_solution.js",
        }
    }

    /// The interpreter, and its options that only check the solution's syntax.
    pub fn interpreter(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Language::Python => ("python3", &["-m", "py_compile"]),
            Language::Sh => ("sh", &["-n"]),
            Language::Javascript => ("node", &["--check"]),
        }
    }

    /// Whether the interpreter is on the `PATH`; tasks in a language without one are skipped.
    pub fn available(self) -> bool {
        on_path(self.interpreter().0)
    }

    /// What the model is told about the form of its answer.
    fn instructions(self) -> &'static str {
        match self {
            Language::Python => "Reply with the complete Python code in one ```python block.",
            Language::Sh => "Reply with the complete POSIX sh code in one ```sh block.",
            Language::Javascript => {
                "Reply with the complete JavaScript code in one ```javascript block, and export \
                 the function with `module.exports = { ... }`."
            }
        }
    }
}

impl Task {
    /// The user message sent to the model.
    pub fn message(&self) -> String {
        format!("{}\n\n{}", self.prompt.trim(), self.language.instructions())
    }
}

/// Whether `program` is on the `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

impl Suite {
    /// A suite by name: `tiller-basic` (or `basic`), built in, or `humaneval`, read from
    /// `data_dir/suites/HumanEval.jsonl.gz`.
    pub fn load(name: &str, data_dir: &Path) -> Result<Suite, ProbeError> {
        match name {
            "tiller-basic" | "basic" => Suite::basic(),
            "humaneval" => Suite::humaneval(&data_dir.join("suites/HumanEval.jsonl.gz")),
            _ => Err(ProbeError::UnknownSuite(name.into())),
        }
    }

    /// The project's own suite.
    pub fn basic() -> Result<Suite, ProbeError> {
        let tasks = BASIC.iter().map(|(id, text)| {
            let mut task: Task = toml::from_str(text).map_err(|e| ProbeError::SuiteFile {
                path: format!("suites/basic/{id}.toml").into(),
                detail: e.to_string(),
            })?;
            task.id = (*id).into();
            Ok(task)
        });
        Ok(Suite::new("tiller-basic", tasks.collect::<Result<_, ProbeError>>()?))
    }

    /// HumanEval from a gzipped JSON-lines file, one problem a line with `task_id`, `prompt`,
    /// `canonical_solution`, `test` and `entry_point`.
    pub fn humaneval(path: &Path) -> Result<Suite, ProbeError> {
        #[derive(Deserialize)]
        struct Problem {
            task_id: String,
            prompt: String,
            canonical_solution: String,
            test: String,
            entry_point: String,
        }
        let bad = |detail: String| ProbeError::SuiteFile { path: path.into(), detail };
        let file = std::fs::File::open(path)
            .map_err(|e| bad(format!("{e}; install it with `scripts/fetch-suite humaneval`")))?;
        let mut tasks = Vec::new();
        for (n, line) in BufReader::new(flate2::read::GzDecoder::new(file)).lines().enumerate() {
            let line = line.map_err(|e| bad(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let p: Problem =
                serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
            tasks.push(Task {
                id: p.task_id,
                language: Language::Python,
                prompt: format!(
                    "Complete this Python function. Give the whole function, with the imports \
                     it needs.\n\n```python\n{}```",
                    p.prompt
                ),
                tests: format!(
                    "from solution import *\n\n{}\n\ncheck({})\n",
                    p.test, p.entry_point
                ),
                reference: format!("{}{}", p.prompt, p.canonical_solution),
                stub: Some(p.prompt),
                entry_point: p.entry_point,
            });
        }
        Ok(Suite::new("humaneval", tasks))
    }
}

impl<T: SuiteTask> Suite<T> {
    /// A suite of `tasks`, versioned by their content.
    pub fn new(name: &str, tasks: Vec<T>) -> Suite<T> {
        // Serializing plain strings and enums cannot fail.
        let json = serde_json::to_string(&tasks).unwrap_or_default();
        Suite { name: name.into(), version: sha256_hex(json.as_bytes()), tasks }
    }

    /// The suite with only the tasks in `ids` (a calibration's keep list), versioned anew.
    pub fn retain(self, ids: &[String]) -> Suite<T> {
        let tasks = self.tasks.into_iter().filter(|t| ids.iter().any(|id| id == t.id())).collect();
        Suite::new(&self.name, tasks)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn basic_suite_has_tasks_in_three_languages_and_a_stable_version() {
        let suite = Suite::basic().unwrap();
        assert_eq!(suite.tasks.len(), 12);
        for lang in [Language::Python, Language::Sh, Language::Javascript] {
            assert!(suite.tasks.iter().any(|t| t.language == lang), "{lang:?}");
        }
        assert_eq!(suite.version, Suite::basic().unwrap().version);
        assert_eq!(suite.version.len(), 64);
        let fewer = suite.clone().retain(&["py-roman".into(), "sh-clamp".into()]);
        assert_eq!(fewer.tasks.len(), 2);
        assert_ne!(fewer.version, suite.version);
        assert!(suite.tasks[0].message().ends_with("```python block."));
    }

    #[test]
    fn reads_humaneval_format_from_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suites/HumanEval.jsonl.gz");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(include_bytes!("../tests/fixtures/humaneval-mini.jsonl")).unwrap();
        gz.finish().unwrap();
        let suite = Suite::load("humaneval", dir.path()).unwrap();
        assert_eq!(suite.tasks.len(), 2);
        let t = &suite.tasks[1];
        assert_eq!(t.id, "Mini/1");
        assert_eq!(t.entry_point, "shout");
        assert!(t.prompt.contains("def shout(s: str) -> str:"));
        assert!(t.tests.ends_with("check(shout)\n"));
        assert!(t.reference.contains("return s.upper()"));
        let missing = Suite::load("humaneval", &dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("scripts/fetch-suite humaneval"), "{missing}");
        assert!(matches!(Suite::load("nope", dir.path()), Err(ProbeError::UnknownSuite(_))));
    }
}

//! Grading an answer offline: find its code, write it beside the task's tests in a fresh
//! directory, check its syntax and run the tests there, confined by the sandbox, and classify
//! what happened as an [`Grade`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tiller_sandbox::{Detection, Policy, Sandbox, SandboxError, Tier};
use tiller_tools::{CommandExit, CommandOutput, run_command};

use crate::{Language, ProbeError, RepoTask, Task};

/// Bytes of test output kept.
const OUTPUT_CAP: usize = 16 * 1024;
/// Bytes of that output kept in a trial's detail.
const DETAIL_CAP: usize = 600;

/// Words that mark an answer without code as a refusal rather than a formatting failure.
const REFUSALS: &[&str] = &[
    "i can't",
    "i cannot",
    "i can not",
    "i'm unable",
    "i am unable",
    "i won't",
    "i will not",
    "i'm sorry",
    "as an ai",
];

/// How one trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Pass,
    /// The code does not parse (the language's syntax check failed).
    CompileError,
    TestFailure,
    /// The tests ran past the grader's time limit.
    Timeout,
    /// The answer holds no code for the task.
    FormatFailure,
    /// The answer declines the task and holds no code.
    Refusal,
    /// The model call failed.
    ApiError,
    /// The agent changed the task's test files (`tiller eval`); whatever the tests say, the
    /// task is not solved.
    TestsEdited,
}

impl Grade {
    pub const ALL: [Grade; 8] = [
        Grade::Pass,
        Grade::CompileError,
        Grade::TestFailure,
        Grade::Timeout,
        Grade::FormatFailure,
        Grade::Refusal,
        Grade::ApiError,
        Grade::TestsEdited,
    ];

    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Pass => "pass",
            Grade::CompileError => "compile_error",
            Grade::TestFailure => "test_failure",
            Grade::Timeout => "timeout",
            Grade::FormatFailure => "format_failure",
            Grade::Refusal => "refusal",
            Grade::ApiError => "api_error",
            Grade::TestsEdited => "tests_edited",
        }
    }

    /// The outcome stored as `name`.
    pub fn parse(name: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// A grade and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graded {
    pub outcome: Grade,
    /// The end of the checker's or the tests' output when they failed.
    pub detail: Option<String>,
}

/// Runs task tests, in the sandbox unless built [`Grader::unconfined`].
#[derive(Clone, Debug)]
pub struct Grader {
    /// What confines the tests: this machine's detection and the `tiller` executable as helper.
    confine: Option<(Detection, PathBuf)>,
    /// Limit for the syntax check and for the tests, each.
    pub timeout: Duration,
}

impl Grader {
    /// A grader that runs tests in the sandbox, without network. Refuses in tier C, where
    /// nothing could confine code a model wrote.
    pub fn confined(detection: Detection, helper: PathBuf) -> Result<Grader, ProbeError> {
        if detection.tier() == Tier::C {
            return Err(SandboxError::Unavailable(detection.reasons().join("; ")).into());
        }
        Ok(Grader { confine: Some((detection, helper)), timeout: Duration::from_secs(10) })
    }

    /// A grader that runs tests as ordinary processes: for tests, and for a user who chose so.
    pub fn unconfined() -> Grader {
        Grader { confine: None, timeout: Duration::from_secs(10) }
    }

    /// Grades the model's `answer` to `task`.
    pub fn grade(&self, task: &Task, answer: &str) -> Result<Graded, ProbeError> {
        let Some(code) = extract_code(answer, task.language, &task.entry_point) else {
            let lower = answer.to_lowercase();
            let refused = REFUSALS.iter().any(|r| lower.contains(r));
            let outcome = if refused { Grade::Refusal } else { Grade::FormatFailure };
            return Ok(Graded { outcome, detail: None });
        };
        let code = match &task.stub {
            Some(stub) if !defines(&code, task) => format!("{stub}{code}"),
            _ => code,
        };
        let dir = tempfile::Builder::new()
            .prefix("tiller-probe-")
            .tempdir()
            .map_err(|e| ProbeError::io("cannot create a directory for the tests", e))?;
        std::fs::write(dir.path().join(task.language.solution_file()), code)
            .map_err(|e| ProbeError::io("cannot write the solution", e))?;
        self.test(task, dir.path())
    }

    /// Writes `task`'s tests into `dir` (over any there) and runs them on the solution file
    /// already in `dir`.
    fn test(&self, task: &Task, dir: &Path) -> Result<Graded, ProbeError> {
        let lang = task.language;
        std::fs::write(dir.join(lang.test_file()), &task.tests)
            .map_err(|e| ProbeError::io("cannot write the tests", e))?;
        let (program, check) = lang.interpreter();
        let check = [check, &[lang.solution_file()][..]].concat();
        let checked = self.run(dir, program, &check)?;
        if !matches!(checked.exit, CommandExit::Code(0)) {
            let outcome = match checked.exit {
                CommandExit::TimedOut(_) => Grade::Timeout,
                _ => Grade::CompileError,
            };
            return Ok(Graded { outcome, detail: Some(tail(&checked.output)) });
        }
        Ok(tested(&self.run(dir, program, &[lang.test_file()])?))
    }

    /// Grades the repository of `task` at `dir`: its test files must be as the task has them
    /// (they are written back either way), and its test command must pass.
    pub fn check(&self, task: &RepoTask, dir: &Path) -> Result<Graded, ProbeError> {
        let edited: Vec<String> =
            task.changed(dir).into_iter().filter(|f| task.test_files.contains(f)).collect();
        task.write(dir, Some(&task.test_files))?;
        let mut graded = tested(&self.run(dir, "sh", &["-c", &task.test])?);
        if !edited.is_empty() {
            let said = graded.detail.map_or(String::new(), |d| format!("\n\n{d}"));
            graded = Graded {
                outcome: Grade::TestsEdited,
                detail: Some(format!(
                    "the test files {} were changed; they are as they were again{said}",
                    edited.join(", ")
                )),
            };
        }
        Ok(graded)
    }

    fn run(&self, dir: &Path, program: &str, args: &[&str]) -> Result<CommandOutput, ProbeError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        // The sandbox owns the command's private temporary directory: keep it to the end.
        let mut sandbox = None;
        let mut cmd = match &self.confine {
            Some((detection, helper)) => {
                let policy = Policy::for_workspace(dir);
                let s = sandbox.insert(Sandbox::new(policy, detection.clone(), helper.clone())?);
                s.command(program.as_ref(), &args, dir)?
            }
            None => {
                let mut cmd = Command::new(program);
                cmd.args(&args).current_dir(dir);
                cmd
            }
        };
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        let output = run_command(cmd, self.timeout, OUTPUT_CAP)?;
        drop(sandbox);
        Ok(output)
    }
}

/// The grade of a test run.
fn tested(run: &CommandOutput) -> Graded {
    let outcome = match run.exit {
        CommandExit::Code(0) => return Graded { outcome: Grade::Pass, detail: None },
        CommandExit::TimedOut(_) => Grade::Timeout,
        CommandExit::Code(_) | CommandExit::Signal(_) | CommandExit::Cancelled => {
            Grade::TestFailure
        }
    };
    Graded { outcome, detail: Some(tail(&run.output)) }
}

/// Whether `code` defines the task's entry point itself.
fn defines(code: &str, task: &Task) -> bool {
    match task.language {
        Language::Python => code.contains(&format!("def {}(", task.entry_point)),
        Language::Sh | Language::Javascript => code.contains(&task.entry_point),
    }
}

/// The code in a model's answer: the fenced block in `language` (or untagged) that mentions
/// `entry_point`, else the first such block, else the first block; without fences, the whole
/// answer when it mentions `entry_point`. A fence left open (the answer was cut off) runs to
/// the end.
pub fn extract_code(answer: &str, language: Language, entry_point: &str) -> Option<String> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in answer.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (fence, open.take()) {
            (Some(tag), None) => open = Some((tag.trim().to_lowercase(), String::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((tag, mut body))) => {
                body.push_str(line);
                body.push('\n');
                open = Some((tag, body));
            }
            (None, None) => {}
        }
    }
    blocks.extend(open);
    if blocks.is_empty() {
        return answer.contains(entry_point).then(|| answer.to_owned());
    }
    let fits = |tag: &str| tag.is_empty() || language.fence_tags().contains(&tag);
    let pick = blocks
        .iter()
        .position(|(tag, body)| fits(tag) && body.contains(entry_point))
        .or_else(|| blocks.iter().position(|(tag, _)| fits(tag)))
        .unwrap_or(0);
    Some(blocks.swap_remove(pick).1)
}

/// The last [`DETAIL_CAP`] bytes of `output`, on a character boundary.
fn tail(output: &str) -> String {
    let mut start = output.len().saturating_sub(DETAIL_CAP);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    output[start..].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Suite;

    fn fenced(lang: &str, code: &str) -> String {
        format!("Here you go:\n\n```{lang}\n{code}\n```\n\nThis works because…")
    }

    #[test]
    fn every_reference_solution_passes_and_an_empty_one_fails() {
        let grader = Grader::unconfined();
        let suite = Suite::basic().unwrap();
        for task in &suite.tasks {
            if !task.language.available() {
                eprintln!(
                    "skipping {}: {} is not installed",
                    task.id,
                    task.language.interpreter().0
                );
                continue;
            }
            let tag = task.language.fence_tags()[0];
            let graded = grader.grade(task, &fenced(tag, &task.reference)).unwrap();
            assert_eq!(graded.outcome, Grade::Pass, "{}: {:?}", task.id, graded.detail);
            let comment = if task.language == Language::Javascript { "//" } else { "#" };
            let stub = format!("{comment} {}\n", task.entry_point);
            let graded = grader.grade(task, &fenced(tag, &stub)).unwrap();
            assert_eq!(graded.outcome, Grade::TestFailure, "{}", task.id);
        }
    }

    #[test]
    fn classifies_syntax_errors_timeouts_refusals_and_prose() {
        let mut grader = Grader::unconfined();
        grader.timeout = Duration::from_millis(1500);
        let suite = Suite::basic().unwrap();
        let task = |id: &str| suite.tasks.iter().find(|t| t.id == id).unwrap();
        let grade = |id: &str, answer: &str| grader.grade(task(id), answer).unwrap().outcome;
        assert_eq!(
            grade("py-roman", &fenced("python", "def to_roman(n):\n  return (")),
            Grade::CompileError
        );
        assert_eq!(grade("sh-clamp", &fenced("sh", "clamp() { if then; }")), Grade::CompileError);
        let spin = "def to_roman(n):\n    while True:\n        pass\n";
        assert_eq!(grade("py-roman", &fenced("python", spin)), Grade::Timeout);
        assert_eq!(grade("py-roman", "I'm sorry, but I cannot help with that."), Grade::Refusal);
        assert_eq!(grade("py-roman", "Roman numerals are fun."), Grade::FormatFailure);
        let wrong = fenced("python", "def to_roman(n):\n    return 'I' * n\n");
        let graded = grader.grade(task("py-roman"), &wrong).unwrap();
        assert_eq!(graded.outcome, Grade::TestFailure);
        assert!(graded.detail.unwrap().contains("AssertionError"));
    }

    #[test]
    fn a_stub_is_completed_by_a_body_only_answer() {
        let task = Task {
            id: "Mini/1".into(),
            language: Language::Python,
            entry_point: "shout".into(),
            prompt: String::new(),
            tests: "from solution import *\nassert shout('a') == 'A'\n".into(),
            stub: Some("def shout(s):\n".into()),
            reference: String::new(),
        };
        let grader = Grader::unconfined();
        let body = fenced("python", "    return s.upper()");
        // A body alone does not mention the entry point; it is still the answer's code.
        assert_eq!(grader.grade(&task, &body).unwrap().outcome, Grade::Pass);
        let whole = fenced("python", "def shout(s):\n    return s.upper()");
        assert_eq!(grader.grade(&task, &whole).unwrap().outcome, Grade::Pass);
    }

    #[test]
    fn extracts_the_block_for_the_language_and_entry_point() {
        let lang = Language::Python;
        let two = "```text\nusage: f(1)\n```\n```python\ndef f(x):\n    return x\n```\n";
        assert_eq!(extract_code(two, lang, "f").unwrap(), "def f(x):\n    return x\n");
        let example_first = "```python\nprint(g(1))\n```\n```python\ndef g(x): ...\n```";
        assert_eq!(extract_code(example_first, lang, "def g").unwrap(), "def g(x): ...\n");
        let cut_off = "```py\ndef f(x):\n    return";
        assert_eq!(extract_code(cut_off, lang, "f").unwrap(), "def f(x):\n    return\n");
        assert_eq!(extract_code("def f(x): return x", lang, "f").unwrap(), "def f(x): return x");
        assert_eq!(extract_code("no code here", lang, "f"), None);
        assert_eq!(Grade::parse("compile_error"), Some(Grade::CompileError));
        assert_eq!(Grade::parse("nope"), None);
    }
}

//! What the agent knows of the workspace and gives the model so that it need not guess: before
//! the first turn, the workspace's files, the project's test command and, for a task about a
//! failing test or a bug, what the tests say now; on every turn, the tools' argument schemas held
//! to paths and lines that exist (for a provider that samples calls under a grammar).

use std::collections::BTreeSet;

use tiller_repomap::RepoMap;
use tiller_tools::{FileList, ProjectCommands, Registry, Workspace, constrain_specs, is_test_path};
use tiller_types::{Cancel, ToolSpec};

use crate::Checker;

/// Words that say a task is about a failing test or a bug, so that running the tests first is
/// worth it.
const FAILURE_WORDS: [&str; 7] = ["test", "fail", "bug", "error", "broken", "crash", "fix"];

/// The brief given with the task before the model's first turn, in at most about `budget` bytes
/// for each part: the workspace's files, shallow ones first; the project's test command; when
/// the task is about a failure and the tests can run without asking (by `checker`), which
/// tests fail, the end of their output, the lines most likely at fault and the code the tests
/// involve: the files the output names, then other small ones, whole; and, where the code is
/// too large to show whole, a map of the definitions in the files not shown, those the task and
/// the output name first (in half the budget). Returns the brief and the files it shows whole.
pub(crate) fn brief(
    ws: &Workspace,
    task: &str,
    budget: usize,
    checker: Option<&dyn Checker>,
    cancel: &Cancel,
) -> (String, Vec<String>) {
    let files = FileList::scan(ws).files;
    let mut out = list_files(&files, budget / 2);
    let (output, shown) =
        tests(ws, &files, task, budget, checker, cancel, &mut out).unwrap_or_default();
    let size = |f: &String| std::fs::metadata(ws.root().join(f)).map_or(0, |m| m.len() as usize);
    let code: Vec<&String> = files.iter().filter(|f| RepoMap::maps(f)).collect();
    if code.iter().copied().map(size).sum::<usize>() > budget {
        let texts: Vec<(&str, String)> =
            code.into_iter().filter_map(|f| Some((f.as_str(), ws.read_text(f).ok()??))).collect();
        let map = RepoMap::new(texts.iter().map(|(f, text)| (*f, text.as_str())));
        let map = map.render(&format!("{task}\n{output}"), &shown, budget / 2);
        if !map.is_empty() {
            out.push_str("\nDefinitions in the code");
            out.push_str(if shown.is_empty() { "" } else { " not shown above" });
            out.push_str(&format!(", the most relevant files first:\n{map}"));
        }
    }
    (out, shown)
}

/// Appends the project's test command to `out` and, when the task is about a failure and the
/// tests fail, what [`brief`] says of them. Returns the tests' output and the files shown whole.
fn tests(
    ws: &Workspace,
    files: &[String],
    task: &str,
    budget: usize,
    checker: Option<&dyn Checker>,
    cancel: &Cancel,
    out: &mut String,
) -> Option<(String, Vec<String>)> {
    let (commands, _) = ProjectCommands::discover(ws.root())
        .or_else(|| ProjectCommands::load(ws.root()).ok().map(|(c, _)| (c, "")))?;
    out.push_str(&format!("\nThe project's tests run with: {}\n", commands.test));
    let lower = task.to_lowercase();
    let checker = checker.filter(|_| FAILURE_WORDS.iter().any(|w| lower.contains(w)))?;
    let result = checker.check(ws.root(), &[], cancel).ok()?;
    if result.green() {
        out.push_str("They were run just now and pass.\n");
        return None;
    }
    out.push_str("They were run just now and fail");
    if !result.failed.is_empty() {
        let names: Vec<&str> = result.failed.keys().map(String::as_str).collect();
        out.push_str(&format!(" ({})", names.join(", ")));
    }
    out.push_str(&format!(". The end of their output:\n{}\n", result.excerpt(budget / 2)));
    if let Some(region) = crate::localise::region(ws, &result.output) {
        out.push('\n');
        out.push_str(&region.describe());
    }
    let shown = show_files(ws, files, &result.output, budget, out);
    Some((result.output, shown))
}

/// Appends to `out`, within `budget` bytes, whole code files: those `output` names first, then
/// the others. Returns the files shown.
fn show_files(
    ws: &Workspace,
    files: &[String],
    output: &str,
    budget: usize,
    out: &mut String,
) -> Vec<String> {
    let (named, rest): (Vec<&String>, Vec<&String>) =
        files.iter().filter(|f| !f.ends_with(".md")).partition(|f| names(output, f));
    let mut shown = Vec::new();
    let mut used = 0;
    for file in named.into_iter().chain(rest) {
        let Ok(Some(text)) = ws.read_text(file) else {
            continue;
        };
        if used + text.len() > budget {
            continue;
        }
        used += text.len();
        out.push_str(&format!("\n{file}:\n{}\n", text.trim_end()));
        shown.push(file.clone());
    }
    shown
}

/// Whether `output` names `path` (not as the end of a longer name).
fn names(output: &str, path: &str) -> bool {
    output
        .match_indices(path)
        .any(|(at, _)| !output[..at].ends_with(|c: char| c.is_alphanumeric() || "_-.".contains(c)))
}

/// The list of `files`, cut to about `budget` bytes.
fn list_files(files: &[String], budget: usize) -> String {
    let mut out = String::from("Files in the workspace:\n");
    let mut listed = 0;
    for file in files {
        if out.len() + file.len() > budget {
            break;
        }
        out.push_str(file);
        out.push('\n');
        listed += 1;
    }
    if listed < files.len() {
        out.push_str(&format!("({} more files)\n", files.len() - listed));
    }
    out
}

/// Tools offered to a model with a small context (8k tokens or less): fewer, simpler ones.
const COMPACT_TOOLS: [&str; 3] = ["read_file", "replace", "shell"];

/// Context lengths up to this get the compact prompt and tools.
pub const COMPACT_CONTEXT: u64 = 8192;

/// The tools offered in one request.
pub(crate) struct Offer {
    /// The tools, with their schemas plain.
    pub specs: Vec<ToolSpec>,
    /// With `constrained`, the calls a reply may make, held to the workspace
    /// ([`Request::callable`](tiller_model::Request)); otherwise none.
    pub callable: Vec<ToolSpec>,
    /// Where every call offered is small but a `replace` held to the lines of some files: those
    /// files. A reply then needs no more output than a rewrite of the largest of them.
    pub bounded_by: Option<Vec<String>>,
}

/// The tools as offered in one request. With `constrained`, the calls a reply may make: path
/// arguments list the workspace's paths and `replace`'s text the lines of the code files in
/// `read` (or, before any was read, of every file while they are few), neither prose nor
/// dotfiles, test files only where there is no other code.
pub(crate) fn offer(
    tools: &Registry,
    ws: &Workspace,
    constrained: bool,
    compact: bool,
    read: &BTreeSet<String>,
) -> Offer {
    let mut specs = tools.specs();
    if compact {
        // Tools the user added (an MCP server's) stay offered.
        specs.retain(|s| COMPACT_TOOLS.contains(&s.name.as_str()) || !tools.is_builtin(&s.name));
    }
    let mut shown = specs.clone();
    constrain_specs(&mut shown, None);
    if !constrained {
        return Offer { specs: shown, callable: Vec::new(), bounded_by: None };
    }
    let files = {
        let mut files = FileList::scan(ws);
        // Code read so far, or shown in the brief; before any, every file while they are few.
        // Not prose (AGENTS.md counts as read, being in the system prompt) nor dotfiles
        // (`.gitignore`): rarely what a task edits, and a small model otherwise edits them first.
        // Tests are left out while there is other code: a failing test is fixed in the code.
        let is_code =
            |f: &&String| !f.ends_with(".md") && !f.split('/').any(|p| p.starts_with('.'));
        let read: Vec<String> = read.iter().filter(is_code).cloned().collect();
        let lines_of = match read.is_empty() {
            true => files.files.iter().filter(is_code).cloned().collect(),
            false => read,
        };
        let (tests, code): (Vec<String>, Vec<String>) =
            lines_of.into_iter().partition(|f| is_test_path(f));
        let lines_of = if code.is_empty() { tests } else { code };
        files.read_lines(ws, &lines_of);
        files
    };
    constrain_specs(&mut specs, Some(&files));
    hold_reads_to_unread_files(&mut specs, &files, read);
    let only_builtin = specs.iter().all(|s| tools.is_builtin(&s.name));
    let bounded_by = (compact && only_builtin && !files.lines.is_empty())
        .then(|| files.lines.into_keys().collect());
    Offer { specs: shown, callable: specs, bounded_by }
}

/// `read_file` may name only files not read yet (their content is in the conversation already,
/// and small models read one file over and over); once every file has been read it is not
/// offered at all.
fn hold_reads_to_unread_files(
    specs: &mut Vec<ToolSpec>,
    files: &FileList,
    read: &BTreeSet<String>,
) {
    if files.truncated {
        return;
    }
    let unread: Vec<&String> = files.files.iter().filter(|f| !read.contains(*f)).collect();
    if unread.is_empty() {
        specs.retain(|s| s.name != "read_file");
        return;
    }
    for spec in specs.iter_mut().filter(|s| s.name == "read_file") {
        if let Some(path) = spec.parameters.pointer_mut("/properties/path")
            && path.get("enum").is_some()
        {
            path["enum"] = serde_json::json!(unread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use tiller_tools::{SuiteResult, parse_output};

    /// Runs the test command discovered for the directory, unconfined.
    struct Discovered;

    impl Checker for Discovered {
        fn check(
            &self,
            dir: &std::path::Path,
            _: &[String],
            _: &Cancel,
        ) -> Result<SuiteResult, String> {
            let (commands, _) = ProjectCommands::discover(dir).ok_or("no test command")?;
            let out = std::process::Command::new("bash")
                .args(["-c", &commands.test])
                .current_dir(dir)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            Ok(parse_output(&text, out.status.success()))
        }
    }

    #[test]
    fn the_brief_lists_files_and_the_failing_test() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greet.py"), "def greet(name):\n    return \"Hello\"\n")
            .unwrap();
        std::fs::write(
            dir.path().join("test_greet.py"),
            "from greet import greet\nassert greet(\"Ada\") == \"Hello, Ada!\", greet(\"Ada\")\n",
        )
        .unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        let (brief, shown) = brief(
            &ws,
            "The test fails; fix greet.py.",
            4000,
            Some(&Discovered),
            &Cancel::default(),
        );
        assert!(brief.starts_with("Files in the workspace:\ngreet.py\ntest_greet.py\n"), "{brief}");
        assert!(
            brief.contains(
                "The project's tests run with: for t in test*.py; do python3 \"$t\" || exit 1; done\n"
            ),
            "{brief}"
        );
        assert!(brief.contains("They were run just now and fail"), "{brief}");
        assert!(brief.contains("AssertionError: Hello"), "{brief}");
        assert_eq!(shown, ["test_greet.py", "greet.py"], "the file the output names first");
        assert!(
            brief.ends_with("\ngreet.py:\ndef greet(name):\n    return \"Hello\"\n"),
            "{brief}"
        );

        let (quiet, _) =
            super::brief(&ws, "Describe the project.", 4000, Some(&Discovered), &Cancel::default());
        assert!(!quiet.contains("run just now"), "{quiet}");
        let (tight, _) = super::brief(&ws, "Describe the project.", 80, None, &Cancel::default());
        assert!(tight.contains("(1 more files)"), "{tight}");
    }

    #[test]
    fn the_brief_maps_the_code_too_large_to_show_whole() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| std::fs::write(dir.path().join(path), text).unwrap();
        let filler = |prefix: &str| -> String {
            (0..60).map(|i| format!("def {prefix}_{i}(x):\n    return x + {i}\n\n\n")).collect()
        };
        write(
            "pricing.py",
            &format!(
                "{}def discounted(amount, percent):\n    return amount * (100 + percent) / 100\n",
                filler("rate")
            ),
        );
        write(
            "cart.py",
            "from pricing import discounted\n\n\ndef total(items, percent):\n    \
             return discounted(sum(items), percent)\n",
        );
        write("report.py", &filler("column"));
        write(
            "test_cart.py",
            "from cart import total\nassert total([100], 10) == 90, total([100], 10)\n",
        );
        let ws = Workspace::new(dir.path()).unwrap();
        let task = "The cart total is wrong when a discount applies; the test fails.";

        let (brief, shown) = brief(&ws, task, 1600, Some(&Discovered), &Cancel::default());
        assert!(!shown.contains(&"pricing.py".to_string()), "too large to show whole: {shown:?}");
        let (_, map) = brief.split_once("\nDefinitions in the code not shown above").expect(&brief);
        assert!(map.contains("pricing.py:\n"), "{map}");
        assert!(map.contains(" 241: def discounted(amount, percent):\n"), "{map}");
        assert!(map.len() <= 800 + 60, "{map}");

        let (small, _) = super::brief(&ws, task, 100_000, Some(&Discovered), &Cancel::default());
        assert!(!small.contains("Definitions in the code"), "all shown whole: {small}");
    }

    #[test]
    fn constrained_specs_hold_paths_and_lines_to_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greet.py"), "def greet(name):\n    return \"Hello\"\n")
            .unwrap();
        std::fs::write(dir.path().join("test_greet.py"), "assert 1\n").unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        let tools = Registry::default();
        let read = BTreeSet::from(["greet.py".to_string()]);

        let plain = offer(&tools, &ws, false, false, &read).specs;
        assert!(!serde_json::to_string(&plain).unwrap().contains("x-tiller"));
        assert_eq!(plain.len(), tools.specs().len());

        let offered = offer(&tools, &ws, true, true, &read);
        let shown: Vec<&str> = offered.specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(shown, ["read_file", "replace", "shell"]);
        let compact: Vec<&ToolSpec> = plain.iter().filter(|s| shown.contains(&&*s.name)).collect();
        assert_eq!(offered.specs.iter().collect::<Vec<_>>(), compact, "plain");
        let held = offered.callable;
        let names: Vec<&str> = held.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["read_file", "replace", "shell"]);
        assert_eq!(
            held[0].parameters["properties"]["path"]["enum"],
            json!(["test_greet.py"]),
            "only the file not read yet"
        );
        let alternatives = held[1].parameters["anyOf"].as_array().unwrap();
        assert_eq!(alternatives.len(), 1, "only the file read");
        assert_eq!(
            alternatives[0]["properties"]["old"]["enum"],
            json!(["def greet(name):", "    return \"Hello\""])
        );

        let all = BTreeSet::from(["greet.py".to_string(), "test_greet.py".to_string()]);
        let names: Vec<String> =
            offer(&tools, &ws, true, true, &all).callable.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["replace", "shell"], "nothing left to read");
        // The code's lines, not a dotfile's nor the prose's, before any file is read and
        // after they were (as the brief shows small files whole).
        std::fs::write(dir.path().join(".gitignore"), "__pycache__/\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "Greets.\n").unwrap();
        let shown = BTreeSet::from(["greet.py".into(), ".gitignore".into(), "README.md".into()]);
        for read in [BTreeSet::new(), shown] {
            let specs = offer(&tools, &ws, true, true, &read).callable;
            let replace = specs.iter().find(|s| s.name == "replace").unwrap();
            let paths: Vec<&Value> = replace.parameters["anyOf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["properties"]["path"]["const"])
                .collect();
            assert_eq!(paths, [&json!("greet.py")], "{read:?}");
        }
    }
}

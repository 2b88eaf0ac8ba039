//! Where a failing test points: from the test run's output (the file and line references of a
//! traceback or a panic) and the code the failing test lines call, the function most likely at
//! fault, so that the model is shown those lines and a candidate edit can be held to them.

use std::sync::LazyLock;

use regex::Regex;
use tiller_tools::{Workspace, is_test_path};

/// Longest region given whole; a longer function is cut to the lines around the one named.
const MAX_REGION_LINES: usize = 40;

/// Lines kept either side of the line named, when a function is too long to give whole.
const AROUND: usize = 8;

/// `File "greet.py", line 5` (Python), `src/lib.rs:12:5` (Rust, Go, JavaScript stacks).
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern: it compiles.
    #[allow(clippy::unwrap_used)]
    Regex::new(r#"([A-Za-z0-9_./\\-]+\.[A-Za-z0-9]+)(?:", line |:)(\d+)"#).unwrap()
});

/// Names a line of code uses.
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern: it compiles.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").unwrap()
});

/// Whether `line` of the file at `path` is a comment or a docstring's line, as the file's
/// language begins them (in a shell script, `*.jpg)` is a pattern).
pub(crate) fn is_comment(path: &str, line: &str) -> bool {
    let begins: &[&str] = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("py") => &["#", "\"\"\"", "'''"],
        Some("sh" | "bash" | "rb" | "pl" | "r" | "toml" | "yaml" | "yml") => &["#"],
        _ => &["//", "/*", "*"],
    };
    begins.iter().any(|c| line.trim_start().starts_with(c))
}

/// Lines of one file most likely at fault.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Region {
    pub path: String,
    /// The first line, counting from 1.
    pub first: usize,
    pub lines: Vec<String>,
    /// The test file and its line that failed, where the output names one.
    pub test: Option<(String, String)>,
}

impl Region {
    /// The region for the model: where it is and its lines, numbered.
    pub fn describe(&self) -> String {
        let last = self.first + self.lines.len() - 1;
        let mut out =
            format!("The fault is most likely in {}, lines {}-{last}:\n", self.path, self.first);
        for (n, line) in self.lines.iter().enumerate() {
            out.push_str(&format!("{:>4} {line}\n", self.first + n));
        }
        out
    }
}

/// The region a failing test run's `output` points to: the innermost frame in code that is not
/// a test; failing that, the definition of a function the innermost test line calls.
pub(crate) fn region(ws: &Workspace, output: &str) -> Option<Region> {
    let frames: Vec<(String, usize)> = REFERENCE
        .captures_iter(output)
        .filter_map(|c| {
            let path = relative(ws, &c[1])?;
            Some((path, c[2].parse().ok()?))
        })
        .collect();
    // Python prints the innermost frame last, Rust and JavaScript the failing line first; a
    // frame in code that is not a test is preferred either way.
    if frames.is_empty() {
        // No line named (a shell test says only what failed): the tests' own lines.
        return most_called(ws, &test_lines(ws));
    }
    let code_frame = |(path, _): &&(String, usize)| !is_test_path(path);
    let frame = frames.iter().rev().find(code_frame);
    let test = frames.iter().rev().find(|f| !code_frame(f)).and_then(|(path, line)| {
        let text = ws.read_text(path).ok()??;
        Some((path.clone(), text.lines().nth(line.checked_sub(1)?)?.trim().to_string()))
    });
    let region = match frame {
        Some((path, line)) => enclosing(path, &ws.read_text(path).ok()??, *line),
        None => most_called(ws, &frames),
    };
    Some(Region { test, ..region? })
}

/// The function the test lines of `frames` call most often (the innermost line's first, of
/// equals), where it is defined in code that is not a test.
fn most_called(ws: &Workspace, frames: &[(String, usize)]) -> Option<Region> {
    let mut called: Vec<(String, usize)> = Vec::new();
    let mut texts: std::collections::HashMap<&str, Option<String>> = Default::default();
    for (test, line) in frames.iter().rev() {
        let text = texts.entry(test).or_insert_with(|| ws.read_text(test).ok().flatten());
        let Some(code) = line.checked_sub(1).and_then(|at| text.as_deref()?.lines().nth(at)) else {
            continue;
        };
        for name in IDENTIFIER.find_iter(code).map(|m| m.as_str()) {
            match called.iter_mut().find(|(n, _)| n == name) {
                Some((_, count)) => *count += 1,
                None => called.push((name.to_string(), 1)),
            }
        }
    }
    // Stable: the first called of equals first.
    called.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let files = tiller_tools::FileList::scan(ws).files;
    let defined = |code: &str| CALL.captures_iter(code).find_map(|c| definition(ws, &files, &c[1]));
    called.iter().find_map(|(name, _)| definition(ws, &files, name)).or_else(|| {
        // The failing lines call nothing of the workspace's (`assert_eq!(v, [3, 1, 2])`): the
        // nearest line above one, in its test, that does.
        frames.iter().rev().find_map(|(test, line)| {
            let text = texts.get(test.as_str())?.as_deref()?;
            let above: Vec<&str> = text.lines().take(line.saturating_sub(1)).collect();
            let start = above.iter().rposition(|code| opens(test, code)).unwrap_or(0);
            let start = start.max(above.len().saturating_sub(MAX_REGION_LINES));
            above[start..].iter().rev().find_map(|code| defined(code))
        })
    })
}

/// A name called: `name(`.
static CALL: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern: it compiles.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(").unwrap()
});

/// The functions of the workspace's code that `region` calls, each as a region of its own (the
/// fault may be in what the failing code calls), in the order of the calls.
pub(crate) fn callees(ws: &Workspace, region: &Region) -> Vec<Region> {
    let files = tiller_tools::FileList::scan(ws).files;
    let mut out: Vec<Region> = Vec::new();
    for name in CALL.captures_iter(&region.lines.join("\n")) {
        let Some(callee) = definition(ws, &files, &name[1]) else {
            continue;
        };
        let seen = |r: &Region| r.path == callee.path && r.first == callee.first;
        if !seen(region) && !out.iter().any(seen) {
            out.push(Region { test: region.test.clone(), ..callee });
        }
    }
    out
}

/// Lines of the tests' files read when the output names none, at most.
const MAX_TEST_LINES: usize = 2000;

/// Every line of the workspace's test files, as (file, line) frames, up to [`MAX_TEST_LINES`].
fn test_lines(ws: &Workspace) -> Vec<(String, usize)> {
    let files = tiller_tools::FileList::scan(ws).files;
    let tests = files.into_iter().filter(|f| is_test_path(f));
    let lines = tests.flat_map(|file| {
        let count = ws.read_text(&file).ok().flatten().map_or(0, |t| t.lines().count());
        (1..=count).map(move |line| (file.clone(), line))
    });
    lines.take(MAX_TEST_LINES).collect()
}

/// `path` as the workspace names it, if it is one of its files.
fn relative(ws: &Workspace, path: &str) -> Option<String> {
    let resolved = ws.resolve(path).ok()?;
    resolved.is_file().then(|| ws.relative(&resolved))
}

/// Where `name` is defined as a function in a code file that is not a test.
fn definition(ws: &Workspace, files: &[String], name: &str) -> Option<Region> {
    let defines = Regex::new(&format!(
        r"^\s*(?:pub(?:\([a-z]+\))?\s+)?(?:async\s+)?(?:def|fn|function|func)\s+{name}\s*[(<]"
    ))
    .ok()?;
    let shell = Regex::new(&format!(r"^\s*(?:function\s+)?{name}\s*\(\s*\)\s*\{{?\s*$")).ok()?;
    files.iter().filter(|f| !is_test_path(f) && !f.ends_with(".md")).find_map(|file| {
        let text = ws.read_text(file).ok()??;
        let defines = if is_shell(file) { &shell } else { &defines };
        let at = text.lines().position(|l| defines.is_match(l))?;
        enclosing(file, &text, at + 1)
    })
}

/// `name() {`, as a shell script defines a function.
static SHELL_FUNCTION: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern: it compiles.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^\s*(?:function\s+)?[A-Za-z_][A-Za-z0-9_]*\s*\(\s*\)\s*\{?\s*$").unwrap()
});

/// Whether `path` is a shell script, by its name.
fn is_shell(path: &str) -> bool {
    path.ends_with(".sh") || path.ends_with(".bash")
}

/// Whether `line` of the file at `path` opens a definition.
fn opens(path: &str, line: &str) -> bool {
    let t = line.trim_start();
    ["def ", "fn ", "pub fn ", "async ", "function ", "func ", "pub(crate) fn ", "class "]
        .iter()
        .any(|k| t.starts_with(k))
        || (is_shell(path) && SHELL_FUNCTION.is_match(line))
}

/// The function around line `line` (from 1) of `text`, by indentation: from the nearest line
/// above that opens a definition to the last line indented deeper than it (and a closing
/// brace at its own depth). Cut to the lines around `line` when long.
fn enclosing(path: &str, text: &str, line: usize) -> Option<Region> {
    let lines: Vec<&str> = text.lines().collect();
    let at = line.checked_sub(1).filter(|&at| at < lines.len())?;
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = (0..=at).rev().find(|&i| opens(path, lines[i])).unwrap_or(at);
    let depth = indent(lines[start]);
    let mut end = start;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        if l.trim().is_empty() {
            continue;
        }
        if indent(l) > depth {
            end = i;
        } else {
            if l.trim_start().starts_with(['}', ')', ']']) {
                end = i;
            }
            break;
        }
    }
    let (first, last) = if end < at {
        // The line named is past the function found: no enclosing definition.
        (at.saturating_sub(AROUND), (at + AROUND).min(lines.len() - 1))
    } else if end - start + 1 > MAX_REGION_LINES {
        (at.saturating_sub(AROUND).max(start), (at + AROUND).min(end))
    } else {
        (constants_above(path, &lines, start, end), end)
    };
    Some(Region {
        path: path.to_string(),
        first: first + 1,
        lines: lines[first..=last].iter().map(|l| l.to_string()).collect(),
        test: None,
    })
}

/// `NAME = …` at the top level of a file (`const`, `let`, `static` or `var` before it allowed).
pub(crate) static CONSTANT: LazyLock<Regex> = LazyLock::new(|| {
    // A fixed pattern: it compiles.
    #[allow(clippy::unwrap_used)]
    Regex::new(
        r"^(?:(?:pub\s+)?(?:const|let|static|var)\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=[^=]",
    )
    .unwrap()
});

/// The first line of the function at lines `start..=end` together with the one-line constants
/// it reads that stand just above it (blank and comment lines between allowed): a value a
/// function reads may be what is wrong.
fn constants_above(path: &str, lines: &[&str], start: usize, end: usize) -> usize {
    let body = lines[start..=end].join("\n");
    let used: std::collections::BTreeSet<&str> =
        IDENTIFIER.find_iter(&body).map(|m| m.as_str()).collect();
    let mut first = start;
    for i in (0..start).rev().take_while(|&i| end - i < MAX_REGION_LINES) {
        match CONSTANT.captures(lines[i]) {
            Some(c) if used.contains(&c[1]) => first = i,
            _ if lines[i].trim().is_empty() || is_comment(path, lines[i]) => {}
            _ => break,
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let ws = Workspace::new(dir.path()).unwrap();
        (dir, ws)
    }

    #[test]
    fn a_failing_assertion_in_a_test_points_to_the_function_it_calls() {
        let (_dir, ws) = workspace(&[
            (
                "greet.py",
                "\"\"\"Greetings.\"\"\"\n\n\ndef greet(name):\n    \"\"\"Doc.\"\"\"\n    return \"Hello\"\n\n\ndef other():\n    return 1\n",
            ),
            (
                "test_greet.py",
                "from greet import greet\n\nassert greet(\"Ada\") == \"Hello, Ada!\"\n",
            ),
        ]);
        let output = "Traceback (most recent call last):\n  File \"/tmp/x/test_greet.py\", line 3, in <module>\n    assert greet(\"Ada\") == \"Hello, Ada!\"\nAssertionError: Hello\n";
        // The absolute path in the traceback is another directory: only the relative one counts.
        let output = output.replace("/tmp/x/", "");
        let region = region(&ws, &output).unwrap();
        assert_eq!(region.path, "greet.py");
        assert_eq!(region.first, 4);
        assert_eq!(
            region.lines,
            ["def greet(name):", "    \"\"\"Doc.\"\"\"", "    return \"Hello\""]
        );
        assert!(region.describe().contains("greet.py, lines 4-6:\n   4 def greet(name):\n"));
        let test = ("test_greet.py".into(), "assert greet(\"Ada\") == \"Hello, Ada!\"".into());
        assert_eq!(region.test, Some(test));
    }

    #[test]
    fn a_frame_in_code_wins_over_the_test_and_braces_close_the_function() {
        let code = "pub fn add(a: i32, b: i32) -> i32 {\n    a - b\n}\n\npub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n";
        let (_dir, ws) =
            workspace(&[("lib.rs", code), ("test_add.rs", "assert_eq!(add(1, 2), 3);\n")]);
        let output =
            "thread 'add' panicked at test_add.rs:1:1\nassertion failed\n  at lib.rs:6:5\n";
        let region = region(&ws, output).unwrap();
        assert_eq!((region.path.as_str(), region.first), ("lib.rs", 5));
        assert_eq!(region.lines.len(), 3);
        assert!(region.lines[2].starts_with('}'));
        let unnamed = super::region(&ws, "no references here").map(|r| r.first);
        assert_eq!(unnamed, Some(1), "no line named: the function the tests call");
    }

    #[test]
    fn of_the_functions_the_failing_lines_call_the_one_called_most_is_chosen() {
        let code = "def to_f(c):\n    return c * 9 / 5 + 23\n\n\ndef to_c(f):\n    return (f - 32) * 5 / 9\n";
        let test = "import unittest\nfrom units import to_c, to_f\n\nclass T(unittest.TestCase):\n    def test_f(self):\n        self.assertEqual(to_f(0), 32.0)\n\n    def test_round_trip(self):\n        self.assertEqual(to_c(to_f(37)), 37)\n";
        let (_dir, ws) = workspace(&[("units.py", code), ("test_units.py", test)]);
        let output = "FAIL: test_f (test_units.T.test_f)\n  File \"test_units.py\", line 6, in test_f\nAssertionError: 23.0 != 32.0\nFAIL: test_round_trip (test_units.T.test_round_trip)\n  File \"test_units.py\", line 9, in test_round_trip\nAssertionError: 32.7 != 37\n";
        let region = region(&ws, output).unwrap();
        assert_eq!(region.lines[0], "def to_f(c):", "called by both failing lines");
    }

    #[test]
    fn a_constant_the_function_reads_just_above_it_is_in_the_region() {
        let code = "import re\nUNITS = {\"s\": 1, \"m\": 60}\n\n\ndef parse(text):\n    if text[-1] not in UNITS:\n        raise ValueError(text)\n    return UNITS[text[-1]]\n";
        let test = "from duration import parse\nassert parse(\"2h\") == 7200\n";
        let (_dir, ws) = workspace(&[("duration.py", code), ("test_duration.py", test)]);
        let output = "Traceback (most recent call last):\n  File \"test_duration.py\", line 2, in <module>\n  File \"duration.py\", line 7, in parse\nValueError: 2h\n";
        let region = region(&ws, output).unwrap();
        assert_eq!(region.first, 2, "from the constant: {region:?}");
        assert_eq!(region.lines.len(), 7);
        assert!(region.lines[0].starts_with("UNITS = "));
    }

    #[test]
    fn a_constant_above_the_function_is_in_the_region_past_the_comments_between() {
        let code = "/// Centimetres in a metre.\npub const CM_PER_M: f64 = 10.0;\n\n/// `m` metres in centimetres.\npub fn to_cm(m: f64) -> f64 {\n    m * CM_PER_M\n}\n";
        let test = "use units::to_cm;\n\n#[test]\nfn converts() {\n    assert_eq!(to_cm(2.0), 200.0);\n}\n";
        let (_dir, ws) = workspace(&[("src/units.rs", code), ("tests/units.rs", test)]);
        let output = "thread 'converts' panicked at tests/units.rs:5:5:\nassertion `left == right` failed\n  left: 20.0\n right: 200.0\n";
        let region = region(&ws, output).unwrap();
        assert_eq!((region.path.as_str(), region.first), ("src/units.rs", 2), "{region:?}");
        assert_eq!(region.lines.len(), 6);
    }

    #[test]
    fn comments_are_told_by_the_language_of_the_file() {
        assert!(is_comment("a.py", "    # why"));
        assert!(is_comment("a.py", "    \"\"\"Doc.\"\"\""));
        assert!(is_comment("src/a.rs", "/// Doc."));
        assert!(is_comment("a.js", "   * more of a block comment"));
        assert!(!is_comment("kind.sh", "    *.jpg | *.png) echo image ;;"), "a case pattern");
        assert!(!is_comment("src/a.rs", "#[derive(Debug)]"));
        assert!(!is_comment("a.py", "    return a * b"));
    }

    #[test]
    fn a_failing_line_that_calls_nothing_of_the_workspace_points_to_the_call_above_it() {
        let code = "/// Moves every item `k` places to the left.\npub fn rotate_left(v: &mut [i32], k: usize) {\n    v.rotate_right(k % v.len());\n}\n";
        let test = "use rotate::rotate_left;\n\n#[test]\nfn rotates() {\n    let mut v = [1, 2, 3];\n    rotate_left(&mut v, 1);\n    assert_eq!(v, [2, 3, 1]);\n}\n\nfn other() {\n    rotate_left(&mut [], 1);\n}\n";
        let (_dir, ws) = workspace(&[("src/lib.rs", code), ("tests/rotate.rs", test)]);
        let output = "thread 'rotates' panicked at tests/rotate.rs:7:5:\nassertion `left == right` failed\n  left: [3, 1, 2]\n right: [2, 3, 1]\n";
        let region = region(&ws, output).unwrap();
        assert_eq!((region.path.as_str(), region.first), ("src/lib.rs", 2), "{region:?}");
        assert_eq!(region.lines.len(), 3);
        let test = ("tests/rotate.rs".into(), "assert_eq!(v, [2, 3, 1]);".into());
        assert_eq!(region.test, Some(test));
        // Above the failing test's own lines nothing is looked for.
        let outside = "thread 'rotates' panicked at tests/rotate.rs:5:5:\n";
        assert_eq!(super::region(&ws, outside), None);
    }

    #[test]
    fn a_shell_test_that_names_no_line_points_to_the_function_the_tests_call() {
        let code = "# is_even N: succeeds when N is even.\nis_even() {\n    [ $(($1 % 2)) -eq 1 ]\n}\n\nlog() {\n    echo \"$@\"\n}\n";
        let test = ". ./numbers.sh\nfor n in 0 2; do\n    is_even \"$n\" || echo \"FAIL: $n is even\"\ndone\nis_even 3 && log \"FAIL: 3 is odd\"\n";
        let (_dir, ws) = workspace(&[("numbers.sh", code), ("test.sh", test)]);
        let region = region(&ws, "FAIL: 0 is even\nFAIL: 2 is even\n").unwrap();
        assert_eq!((region.path.as_str(), region.first), ("numbers.sh", 2), "{region:?}");
        assert_eq!(region.lines, ["is_even() {", "    [ $(($1 % 2)) -eq 1 ]", "}"]);
        assert_eq!(region.test, None);
    }

    #[test]
    fn the_functions_a_region_calls_are_regions_too() {
        let pricing = "CODES = {\"HALF\": 50}\n\n\ndef discounted(amount, code):\n    return amount * (100 + CODES.get(code, 0)) / 100\n";
        let cart = "from pricing import discounted\n\n\ndef total(items, code=None):\n    amount = sum(p * q for p, q in items)\n    return discounted(amount, code)\n";
        let test = "from cart import total\nassert total([(10, 2)], \"HALF\") == 10\n";
        let (_dir, ws) =
            workspace(&[("pricing.py", pricing), ("cart.py", cart), ("test_cart.py", test)]);
        let output = "  File \"test_cart.py\", line 2, in <module>\nAssertionError\n";
        let region = region(&ws, output).unwrap();
        assert_eq!((region.path.as_str(), region.first), ("cart.py", 4));
        let callees = callees(&ws, &region);
        let found: Vec<(&str, usize)> =
            callees.iter().map(|r| (r.path.as_str(), r.first)).collect();
        assert_eq!(found, [("pricing.py", 1)], "`sum` is no function of the workspace");
        assert_eq!(callees[0].test, region.test);
    }
}

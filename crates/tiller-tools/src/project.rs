//! The project's own commands (test suite, one test, build, benchmark): discovered from the
//! files that mark a Rust, Python, Go or Node project, and overridden field by field by the
//! project's `.tiller/project.toml`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ToolError;

/// Where a project keeps its own commands, relative to its root.
pub const PROJECT_FILE: &str = ".tiller/project.toml";

/// The commands tiller runs to check the agent's work; `bash -c` lines run in the project root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectCommands {
    /// The whole test suite.
    pub test: String,
    /// One test, with `{name}` where its name goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_one: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench: Option<String>,
}

/// Where each command in force came from, by field name: the project file, or the file that
/// marked the project's kind.
pub type Origin = BTreeMap<&'static str, String>;

/// The project file as written: every field optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    test: Option<String>,
    test_one: Option<String>,
    build: Option<String>,
    bench: Option<String>,
}

impl ProjectCommands {
    /// The commands for the project at `root`: discovered ones overridden by the project file.
    pub fn load(root: &Path) -> Result<(ProjectCommands, Origin), ToolError> {
        let path = root.join(PROJECT_FILE);
        let overrides = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Overrides>(&text)
                .map_err(|e| ToolError::Project { path: path.clone(), detail: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Overrides::default(),
            Err(e) => return Err(ToolError::Project { path, detail: e.to_string() }),
        };
        let (found, marker) = match Self::discover(root) {
            Some((commands, marker)) => (Some(commands), marker),
            None => (None, ""),
        };
        let mut origin = Origin::new();
        let mut pick = |field, set: Option<String>, found: Option<String>| match (set, found) {
            (Some(set), _) => {
                origin.insert(field, PROJECT_FILE.to_string());
                Some(set)
            }
            (None, Some(found)) => {
                origin.insert(field, marker.to_string());
                Some(found)
            }
            (None, None) => None,
        };
        let f = found.unwrap_or_default();
        let test = pick("test", overrides.test, Some(f.test).filter(|t| !t.is_empty()));
        let commands = ProjectCommands {
            test_one: pick("test_one", overrides.test_one, f.test_one),
            build: pick("build", overrides.build, f.build),
            bench: pick("bench", overrides.bench, f.bench),
            test: test.ok_or_else(|| ToolError::Project {
                path,
                detail: "no test command: none was discovered (Cargo.toml, pyproject.toml, \
                         setup.py, test_*.py, go.mod, package.json) and none is set here"
                    .into(),
            })?,
        };
        Ok((commands, origin))
    }

    /// The usual commands for the kind of project at `root`, and the file that told its kind.
    pub fn discover(root: &Path) -> Option<(ProjectCommands, &'static str)> {
        let has = |name: &str| root.join(name).exists();
        if has("Cargo.toml") {
            let cargo = "cargo test --offline --no-fail-fast";
            let bench = has("benches").then(|| "cargo bench --offline".to_string());
            return Some((
                ProjectCommands {
                    test: cargo.into(),
                    test_one: Some(format!("{cargo} {{name}}")),
                    build: Some("cargo build --offline --all-targets".into()),
                    bench,
                },
                "Cargo.toml",
            ));
        }
        let python = ["pyproject.toml", "setup.py", "setup.cfg"].into_iter().find(|f| has(f));
        if let Some(marker) = python.or_else(|| has_python_tests(root).then_some("test_*.py")) {
            return Some((python_commands(root), marker));
        }
        if has("go.mod") {
            return Some((
                ProjectCommands {
                    test: "go test -v ./...".into(),
                    test_one: Some("go test -v -run ^{name}$ ./...".into()),
                    build: Some("go build ./...".into()),
                    bench: None,
                },
                "go.mod",
            ));
        }
        if has("package.json") {
            let scripts = std::fs::read_to_string(root.join("package.json")).unwrap_or_default();
            let build = scripts.contains("\"build\"").then(|| "npm run build".to_string());
            return Some((
                ProjectCommands { test: "npm test".into(), build, ..Default::default() },
                "package.json",
            ));
        }
        None
    }

    /// The command that runs only test `name`, or the whole suite when there is none.
    pub fn one(&self, name: &str) -> String {
        match &self.test_one {
            Some(template) => template.replace("{name}", &shell_quote(name)),
            None => self.test.clone(),
        }
    }

    /// Writes these commands to the project file under `root`.
    pub fn save(&self, root: &Path) -> Result<(), ToolError> {
        let path = root.join(PROJECT_FILE);
        let err = |detail: String| ToolError::Project { path: path.clone(), detail };
        let text = toml::to_string(self).map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        std::fs::write(&path, text).map_err(|e| err(e.to_string()))
    }
}

/// pytest when the project configures it, else unittest, which needs nothing installed.
fn python_commands(root: &Path) -> ProjectCommands {
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    let pytest = root.join("pytest.ini").exists()
        || root.join("conftest.py").exists()
        || read("pyproject.toml").contains("[tool.pytest")
        || read("setup.cfg").contains("[tool:pytest]");
    if !pytest && test_scripts(root) {
        // unittest would find no test in them (and Python 3.12 fails a run that finds none).
        return ProjectCommands {
            test: "for t in test*.py; do python3 \"$t\" || exit 1; done".into(),
            ..Default::default()
        };
    }
    // Bytecode caches and pytest's cache would show up as untracked files.
    let base = if pytest {
        "python3 -m pytest -q -rA -p no:cacheprovider"
    } else {
        "python3 -m unittest -v"
    };
    ProjectCommands {
        test: base.into(),
        test_one: Some(format!("{base} {{name}}")),
        ..Default::default()
    }
}

/// The `test*.py` files in `root`.
fn python_tests(root: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let test = |name: &str| name.starts_with("test") && name.ends_with(".py");
    entries.flatten().filter(|e| test(&e.file_name().to_string_lossy())).map(|e| e.path()).collect()
}

fn has_python_tests(root: &Path) -> bool {
    !python_tests(root).is_empty()
}

/// Whether the test files in `root` are scripts that check by running (asserts at the top
/// level) rather than define tests for unittest or pytest.
fn test_scripts(root: &Path) -> bool {
    let files = python_tests(root);
    let script = |path: &std::path::PathBuf| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        !text.trim().is_empty()
            && !["def test", "unittest", "pytest", "TestCase"].iter().any(|w| text.contains(w))
    };
    !files.is_empty() && files.iter().all(script)
}

/// Whether `path` looks like a test file by the usual conventions of Rust, Python, Go and
/// JavaScript.
pub fn is_test_path(path: &str) -> bool {
    let p = Path::new(path);
    let name = p.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let in_tests = p.components().any(|c| matches!(c.as_os_str().to_str(), Some("tests" | "test")));
    let stem = p.file_stem().and_then(|s| s.to_str());
    in_tests
        || matches!(stem, Some("test" | "tests"))
        || name.starts_with("test_")
        || name == "conftest.py"
        || ["_test.py", "_test.go", "_test.rs", ".test.js", ".test.ts", ".spec.js", ".spec.ts"]
            .iter()
            .any(|end| name.ends_with(end))
}

/// `text` as one word for bash.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths() {
        let tests = ["tests/a.rs", "pkg/test/x.js", "test_cart.py", "a/b_test.go", "x.spec.ts"];
        for yes in tests.into_iter().chain(["test.js", "run/test.sh", "tests.py"]) {
            assert!(is_test_path(yes), "{yes}");
        }
        for no in ["src/lib.rs", "shop/cart.py", "testing.py", "contest.py", "latest.js"] {
            assert!(!is_test_path(no), "{no}");
        }
    }

    #[test]
    fn discovers_by_marker_and_the_project_file_overrides_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(ProjectCommands::discover(root).is_none());
        assert!(ProjectCommands::load(root).unwrap_err().to_string().contains("no test command"));
        std::fs::write(root.join("test_a.py"), "").unwrap();
        let (found, marker) = ProjectCommands::discover(root).unwrap();
        assert_eq!((found.test.as_str(), marker), ("python3 -m unittest -v", "test_*.py"));
        std::fs::write(root.join("test_b.py"), "from b import f\nassert f() == 1\n").unwrap();
        assert_eq!(ProjectCommands::discover(root).unwrap().0.test, "python3 -m unittest -v");
        std::fs::write(root.join("test_a.py"), "import b\nassert b.f() == 2\n").unwrap();
        let (scripts, _) = ProjectCommands::discover(root).unwrap();
        assert!(scripts.test.contains("python3 \"$t\""), "test scripts run: {}", scripts.test);
        assert_eq!(scripts.test_one, None);
        std::fs::write(root.join("pyproject.toml"), "[tool.pytest.ini_options]\n").unwrap();
        let (found, marker) = ProjectCommands::discover(root).unwrap();
        assert_eq!(marker, "pyproject.toml");
        assert_eq!(
            found.one("t.py::a b"),
            "python3 -m pytest -q -rA -p no:cacheprovider 't.py::a b'"
        );

        std::fs::write(root.join("Cargo.toml"), "").unwrap();
        std::fs::create_dir(root.join(".tiller")).unwrap();
        std::fs::write(root.join(PROJECT_FILE), "bench = \"./bench.sh\"\n").unwrap();
        let (commands, origin) = ProjectCommands::load(root).unwrap();
        assert_eq!(commands.test, "cargo test --offline --no-fail-fast");
        assert_eq!(commands.bench.as_deref(), Some("./bench.sh"));
        assert_eq!(origin["test"], "Cargo.toml");
        assert_eq!(origin["bench"], PROJECT_FILE);
        assert_eq!(commands.one("it's"), r"cargo test --offline --no-fail-fast 'it'\''s'");

        std::fs::write(root.join(PROJECT_FILE), "tset = \"x\"\n").unwrap();
        assert!(ProjectCommands::load(root).unwrap_err().to_string().contains("tset"));
        commands.save(root).unwrap();
        assert_eq!(ProjectCommands::load(root).unwrap().0, commands);
    }
}

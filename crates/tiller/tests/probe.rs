//! `tiller probe` as a user runs it: a scripted model answers the built-in suite, the answers
//! are graded in the sandbox and recorded in the ledger, two runs are compared, and the report
//! is written.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/http.rs"]
mod http;

use std::path::Path;
use std::process::{Command, Output};

use tiller_probe::{Suite, Task};

fn tiller(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiller"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", home)
        .current_dir(home)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A script answering each task of `tasks`, `samples` times, in the order the probe asks
/// (every task once, then again): with `answer(task)`.
fn script(path: &Path, tasks: &[&Task], samples: usize, answer: impl Fn(&Task) -> String) {
    let turns: Vec<serde_json::Value> = (0..samples)
        .flat_map(|_| tasks.iter().map(|t| serde_json::json!({ "text": answer(t) })))
        .collect();
    let script = serde_json::json!({ "model": "probe-script", "turns": turns });
    std::fs::write(path, script.to_string()).unwrap();
}

/// Every probe trial in the ledger: (run, task, outcome).
fn trials(home: &Path) -> Vec<(String, String, String)> {
    let db = rusqlite::Connection::open(home.join(".local/share/tiller/ledger.sqlite")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT json_extract(payload, '$.run_id'), json_extract(payload, '$.task'),
                    json_extract(payload, '$.outcome')
             FROM entries WHERE kind = 'probe_trial' ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn run_compare_and_report_on_a_scripted_model() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let suite = Suite::basic().unwrap();
    let tasks: Vec<&Task> = suite.tasks.iter().filter(|t| t.language.available()).collect();
    let fence = |t: &Task, code: &str| format!("```{}\n{code}\n```", t.language.fence_tags()[0]);
    // Python tasks right, shell tasks refused, JavaScript ones broken.
    let mixed = |t: &Task| match t.language {
        tiller_probe::Language::Python => fence(t, &t.reference),
        tiller_probe::Language::Sh => "I cannot help with that.".into(),
        tiller_probe::Language::Javascript => fence(t, "function ("),
    };
    script(&home.join("good.json"), &tasks, 2, mixed);
    let run = ["probe", "run", "--provider", "scripted", "--samples", "2"];
    let out = tiller(home, &[&run[..], &["--model", "good.json", "--label", "good"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let python = tasks.iter().filter(|t| t.language == tiller_probe::Language::Python).count();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{} of {} trials passed", python * 2, tasks.len() * 2)),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains(&format!("{0}/{0} trials", tasks.len() * 2)));

    let recorded = trials(home);
    assert_eq!(recorded.len(), tasks.len() * 2);
    for (i, (_, task, outcome)) in recorded.iter().enumerate() {
        // Every task once, then every task again.
        let t = tasks[i % tasks.len()];
        assert_eq!(task, &t.id);
        let expected = match t.language {
            tiller_probe::Language::Python => "pass",
            tiller_probe::Language::Sh => "refusal",
            tiller_probe::Language::Javascript => "compile_error",
        };
        assert_eq!(outcome, expected, "{task}");
    }

    // The same model gets everything wrong now.
    script(&home.join("bad.json"), &tasks, 2, |t| fence(t, &format!("# {}", t.entry_point)));
    let out = tiller(home, &[&run[..], &["--model", "bad.json"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tiller(home, &["probe", "compare"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("verdict: degraded: pass rate fell"), "{stdout}");
    let out = tiller(home, &["probe", "compare", "--json"]);
    let c: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(c["verdict"], "degraded");
    assert_eq!(c["recent"]["passed"], 0);
    assert_eq!(c["baseline"]["passed"], python as u64 * 2);
    // Against itself, a run is not degraded.
    let first = &recorded[0].0;
    let out = tiller(home, &["probe", "compare", "--baseline", first, "--recent", first]);
    assert!(out.status.success(), "{}", text(&out.stdout));

    let out = tiller(home, &["probe", "report", "--out", "report"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(home.join("report/probe-tiller-basic.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("pass rate"), "{svg}");
    let html = std::fs::read_to_string(home.join("report/probe-tiller-basic.html")).unwrap();
    assert!(html.contains("<svg") && html.contains(first.as_str()) && html.contains("good"));
    let table = text(&out.stdout);
    assert_eq!(table.lines().count(), 3, "{table}");
    // Into a closed pipe (`| head -0`) each ends quietly, with the code it has otherwise.
    for (args, code) in [(&["probe", "compare"][..], 1), (&["probe", "report", "--out", "r"], 0)] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut command = Command::new(env!("CARGO_BIN_EXE_tiller"));
        command.args(args).env_clear().env("HOME", home).current_dir(home);
        let out = command.stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    }

    let out =
        tiller(home, &["probe", "run", "--suite", "nope", "--provider", "scripted", "-m", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// Serves OpenAI-style streamed chat completions: the reference solution to the Roman numeral
/// task, and a refusal to everything else.
fn serve(listener: std::net::TcpListener, roman: String) {
    for stream in listener.incoming() {
        let mut stream = stream.unwrap();
        let roman = roman.clone();
        std::thread::spawn(move || {
            let body = http::read_body(&stream);
            let answer = if String::from_utf8_lossy(&body).contains("Roman numeral") {
                format!("```python\n{roman}\n```")
            } else {
                "I cannot do that.".into()
            };
            let events = http::chat_events(&[http::chat_reply("m-served", &answer)]);
            http::respond_events(&mut stream, &events);
        });
    }
}

#[test]
fn run_against_a_loopback_endpoint_on_several_connections() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let suite = Suite::basic().unwrap();
    let roman = suite.tasks.iter().find(|t| t.id == "py-roman").unwrap().reference.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || serve(listener, roman));
    let out = tiller(
        home,
        &[
            "probe",
            "run",
            "--provider",
            "openai",
            "--base-url",
            &url,
            "-m",
            "m",
            "--samples",
            "2",
            "--jobs",
            "3",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["passed"], 2, "{summary}");
    let available = suite.tasks.iter().filter(|t| t.language.available()).count() as u64;
    assert_eq!(summary["outcomes"]["refusal"], available * 2 - 2, "{summary}");
    let db = rusqlite::Connection::open(home.join(".local/share/tiller/ledger.sqlite")).unwrap();
    let (endpoint, returned, ttft): (String, String, Option<i64>) = db
        .query_row(
            "SELECT json_extract(payload, '$.endpoint'), json_extract(payload, '$.model_returned'),
                    json_extract(payload, '$.ttft_ms')
             FROM entries WHERE kind = 'probe_trial' AND json_extract(payload, '$.task') = 'py-roman'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((endpoint.as_str(), returned.as_str()), (url.as_str(), "m-served"));
    assert!(ttft.is_some());
}

#[test]
fn eval_restores_the_tests_and_gives_a_second_try() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let suite = Suite::basic().unwrap();
    let roman = suite.tasks.iter().find(|t| t.id == "py-roman").unwrap();
    let write = |path: &str, content: &str| serde_json::json!({ "name": "write_file", "arguments": { "path": path, "content": content } });
    // First try: a wrong solution, and tests rewritten to pass anyway. Second try: the fix.
    let script = serde_json::json!({ "model": "eval-script", "turns": [
        { "tool_calls": [write("solution.py", "def to_roman(n):\n    return 'I' * n\n"),
                         write("test_solution.py", "print('ok')\n")] },
        { "text": "Done." },
        { "tool_calls": [write("solution.py", &roman.reference)] },
        { "text": "Fixed." },
    ]});
    std::fs::write(home.join("eval.json"), script.to_string()).unwrap();
    let out = tiller(
        home,
        &["eval", "--task", "py-roman", "--provider", "scripted", "-m", "eval.json", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let task = &report["tasks"][0];
    assert_eq!(
        (task["task"].as_str(), task["first_try"].as_str()),
        (Some("py-roman"), Some("tests_edited"))
    );
    assert_eq!(task["second_try"], "pass");
    assert_eq!(
        (report["first_try_rate"].as_f64(), report["second_try_rate"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    assert!(report["tokens"].as_u64().unwrap() > 0);
    assert!(text(&out.stderr).contains("eval py-roman: tests_edited, then pass (4 steps"));
}

#[test]
fn eval_on_bugfix_records_trials_that_probe_compare_reads() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let replace = |path: &str, old: &str, new: &str| serde_json::json!({ "tool_calls": [{ "name": "replace", "arguments": { "path": path, "old": old, "new": new } }] });
    let fixed = serde_json::json!({ "model": "fixer", "turns": [
        replace("pricing.py", "    return amount * (100 + percent) / 100", "    return amount * (100 - percent) / 100"),
        { "text": "Fixed." },
    ]});
    // Edits the file the test imports, not the one with the bug, then gives up.
    let wrong = serde_json::json!({ "model": "fixer", "turns": [
        replace("cart.py", "    return discounted(amount, code)", "    return amount"),
        { "text": "Done." },
        { "text": "I cannot find it." },
    ]});
    let eval = |script: &serde_json::Value, label: &str| {
        std::fs::write(home.join("script.json"), script.to_string()).unwrap();
        let args = ["eval", "--suite", "bugfix", "--task", "py-cart-discount", "--provider"];
        let out = tiller(
            home,
            &[&args[..], &["scripted", "-m", "script.json", "--label", label]].concat(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let table = eval(&fixed, "fixed");
    assert!(table.contains("py-cart-discount     pass          solved           2"), "{table}");
    assert!(table.contains("bugfix (run "), "{table}");
    assert!(
        table.contains("1 tasks, solved 100% first try, 100% after the second; solved 1;"),
        "{table}"
    );
    let table = eval(&wrong, "wrong");
    assert!(table.contains("py-cart-discount     test_failure  wrong_file       3"), "{table}");

    let recorded = trials(home);
    let outcomes: Vec<(&str, &str)> =
        recorded.iter().map(|(_, task, outcome)| (task.as_str(), outcome.as_str())).collect();
    assert_eq!(outcomes, [("py-cart-discount", "pass"), ("py-cart-discount", "test_failure")]);
    let out = tiller(home, &["probe", "compare", "--suite", "bugfix", "--json"]);
    let c: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (c["baseline"]["passed"].as_u64(), c["recent"]["passed"].as_u64()),
        (Some(1), Some(0)),
        "{c}"
    );
}

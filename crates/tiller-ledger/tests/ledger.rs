//! The ledger on real files: writers in two processes, a writer killed mid-batch, hand-tampered
//! rows, schema migrations, and the summary, export and sent queries on a known data set.
//!
//! Child processes are this test binary run again with `--exact child_writer --ignored`; the
//! environment tells `child_writer` what to do.

// Helpers are plain functions, which the lint's test exemption misses.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tiller_ledger::{
    BreakReason, Broken, Entry, GroupBy, Ledger, LedgerError, ModelCall, Note, PriceTable,
    SCHEMA_VERSION, Sent, SentFile, Verification,
};
use tiller_types::Usage;

const MODE: &str = "TILLER_LEDGER_TEST_MODE";
const DB: &str = "TILLER_LEDGER_TEST_DB";
const NAME: &str = "TILLER_LEDGER_TEST_NAME";
/// Entries each writer appends in the concurrency test.
const N: usize = 300;
/// Entries per batch in the kill test.
const BATCH: usize = 25;

fn note(data: serde_json::Value) -> Note {
    Note { topic: "test".into(), data }
}

fn spawn_child(mode: &str, db: &Path, name: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args(["child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .env(DB, db)
        .env(NAME, name)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Not a test: the body of the child processes the other tests start. Does nothing unless
/// started by them.
#[test]
#[ignore = "run as a child process by the multi-process tests"]
fn child_writer() {
    let Ok(mode) = std::env::var(MODE) else { return };
    let db = PathBuf::from(std::env::var(DB).unwrap());
    let name = std::env::var(NAME).unwrap();
    match mode.as_str() {
        // Say ready, wait for the parent's go, then append N single entries. The pause between
        // appends stands for the model call of a turn; without it the busy handler lets one
        // writer run to the end before the other wakes up, and the test would prove little.
        "concurrent" => {
            std::fs::write(db.with_extension(format!("ready-{name}")), b"").unwrap();
            wait_for("go", || db.with_extension("go").exists());
            // Both create the file at once, as two first runs of tiller would.
            let ledger = Ledger::open(&db).unwrap();
            for seq in 0..N {
                let data = serde_json::json!({ "seq": seq });
                ledger.append(&[Entry::now(name.as_str(), note(data))]).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // Append batches until killed; say so after the first one.
        "forever" => {
            let ledger = Ledger::open(&db).unwrap();
            for batch in 0.. {
                let entries: Vec<Entry> = (0..BATCH)
                    .map(|i| {
                        let data =
                            serde_json::json!({ "batch": batch, "i": i, "pad": "x".repeat(200) });
                        Entry::now(name.as_str(), note(data))
                    })
                    .collect();
                ledger.append(&entries).unwrap();
                if batch == 0 {
                    std::fs::write(db.with_extension("ready"), b"").unwrap();
                }
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn two_processes_creating_and_appending_at_once_lose_nothing_and_keep_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let mut children = [spawn_child("concurrent", &db, "a"), spawn_child("concurrent", &db, "b")];
    wait_for("both writers", || {
        ["a", "b"].iter().all(|name| db.with_extension(format!("ready-{name}")).exists())
    });
    std::fs::write(db.with_extension("go"), b"").unwrap();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }

    let ledger = Ledger::open(&db).unwrap();
    assert_eq!(ledger.verify().unwrap(), Verification { checked: 2 * N as u64, broken: None });
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM entries"), 2 * N as i64);
    for name in ["a", "b"] {
        // Every writer's entries are there, once each, in the order it wrote them.
        let seqs: Vec<i64> = conn
            .prepare("SELECT json_extract(payload, '$.data.seq') FROM entries WHERE session = ?1 ORDER BY id")
            .unwrap()
            .query_map([name], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs, (0..N as i64).collect::<Vec<_>>(), "writer {name}");
    }
    let switches = count(
        &conn,
        "SELECT count(*) FROM entries a JOIN entries b ON b.id = a.id + 1 WHERE a.session != b.session",
    );
    assert!(switches >= 2, "the writers never overlapped, so the test proved nothing");
    eprintln!("the two writers took turns {switches} times");
}

#[test]
fn a_writer_killed_mid_session_leaves_whole_batches_and_a_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    drop(Ledger::open(&db).unwrap());
    let mut child = spawn_child("forever", &db, "doomed");
    wait_for("the first batch", || db.with_extension("ready").exists());
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no rollback by the child.
    child.wait().unwrap();

    let ledger = Ledger::open(&db).unwrap();
    let verification = ledger.verify().unwrap();
    assert!(verification.is_ok(), "{verification:?}");
    let conn = Connection::open(&db).unwrap();
    let rows = count(&conn, "SELECT count(*) FROM entries");
    assert!(rows >= BATCH as i64);
    assert_eq!(verification.checked, rows as u64);
    assert_eq!(rows % BATCH as i64, 0, "a partial batch was committed");
    let partial = count(
        &conn,
        &format!(
            "SELECT count(*) FROM (SELECT json_extract(payload, '$.data.batch') AS b, count(*) AS n
             FROM entries GROUP BY b HAVING n != {BATCH})"
        ),
    );
    assert_eq!(partial, 0);
    eprintln!("{} whole batches survived the kill", rows / BATCH as i64);
    // The file still takes appends after the crash.
    ledger.append(&[Entry::now("after", note(serde_json::Value::Null))]).unwrap();
    assert!(ledger.verify().unwrap().is_ok());
}

/// A ledger with ten notes, appended in three batches.
fn ten_entries(db: &Path) -> Ledger {
    let ledger = Ledger::open(db).unwrap();
    let entries: Vec<Entry> =
        (0..10).map(|i| Entry::now("s", note(serde_json::json!({ "i": i })))).collect();
    for batch in [&entries[..3], &entries[3..4], &entries[4..]] {
        ledger.append(batch).unwrap();
    }
    assert_eq!(ledger.verify().unwrap(), Verification { checked: 10, broken: None });
    ledger
}

fn tamper(db: &Path, sql: &str) {
    let conn = Connection::open(db).unwrap();
    let refused = conn.execute(sql, []).unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    conn.execute_batch("DROP TRIGGER entries_no_update; DROP TRIGGER entries_no_delete;").unwrap();
    assert_eq!(conn.execute(sql, []).unwrap(), 1);
}

fn broken_at(id: i64, reason: BreakReason) -> Verification {
    Verification { checked: id as u64 - 1, broken: Some(Broken { id, reason }) }
}

#[test]
fn verify_reports_the_row_whose_payload_was_altered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let ledger = ten_entries(&db);
    tamper(
        &db,
        "UPDATE entries SET payload = '{\"topic\":\"test\",\"data\":{\"i\":99}}' WHERE id = 4",
    );
    assert_eq!(ledger.verify().unwrap(), broken_at(4, BreakReason::HashMismatch));
}

#[test]
fn verify_reports_the_row_whose_hash_was_altered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let ledger = ten_entries(&db);
    tamper(&db, "UPDATE entries SET hash = 'x' || substr(hash, 2) WHERE id = 6");
    assert_eq!(ledger.verify().unwrap(), broken_at(6, BreakReason::HashMismatch));
}

#[test]
fn verify_reports_the_row_after_a_deleted_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let ledger = ten_entries(&db);
    tamper(&db, "DELETE FROM entries WHERE id = 7");
    let broken = Some(Broken { id: 8, reason: BreakReason::PrevMismatch });
    assert_eq!(ledger.verify().unwrap(), Verification { checked: 6, broken });
}

#[test]
fn opening_an_older_ledger_upgrades_it_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    drop(ten_entries(&db));
    // What tiller wrote before schema version 2.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("DROP VIEW model_calls; PRAGMA user_version = 1;").unwrap();
    drop(conn);

    let ledger = Ledger::open(&db).unwrap();
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_eq!(count(&conn, "SELECT count(*) FROM model_calls"), 0);
    assert_eq!(ledger.verify().unwrap().checked, 10);
}

#[test]
fn opening_a_ledger_from_a_newer_tiller_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    drop(Ledger::open(&db).unwrap());
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();

    let err = Ledger::open(&db).err().unwrap();
    assert!(
        matches!(err, LedgerError::NewerSchema { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    assert_eq!(count(&conn, "PRAGMA user_version"), SCHEMA_VERSION + 1, "the file was left alone");
}

const DAY1: i64 = 1_709_287_200_000; // 2024-03-01T10:00:00Z
const DAY2: i64 = 1_709_337_600_000; // 2024-03-02T00:00:00Z
const REMOTE: &str = "https://api.example.com/v1";

fn prices() -> PriceTable {
    serde_json::from_str(
        r#"{"m-*": {"prompt": 2.0, "cached": 0.5, "completion": 8.0},
            "llama*": {"prompt": 0.0, "completion": 0.0}}"#,
    )
    .unwrap()
}

fn call(time_ms: i64, session: &str, model: &str, usage: Usage, latency_ms: u64) -> Entry {
    let local = model.starts_with("llama");
    let call = ModelCall {
        provider: if local { "llama" } else { "openai" }.into(),
        endpoint: (!local).then(|| REMOTE.to_owned()),
        model_requested: model.into(),
        model_returned: model.into(),
        usage,
        latency_ms,
        cost: prices().cost(model, model, &usage),
        ..Default::default()
    };
    Entry { time_ms, session: session.into(), record: call.into() }
}

/// Ten remote calls on day 1 (latencies 10..=100 ms, shuffled), three local calls and one call to
/// a model with no price on day 2.
fn known_calls(ledger: &Ledger) {
    let usage =
        Usage { prompt_tokens: 1_000_000, cached_tokens: 250_000, completion_tokens: 500_000 };
    let remote: Vec<Entry> = [70, 10, 100, 40, 20, 90, 30, 60, 50, 80]
        .iter()
        .enumerate()
        .map(|(i, &latency)| call(DAY1 + i as i64, "s1", "m-large", usage, latency))
        .collect();
    ledger.append(&remote).unwrap();
    let local = Usage { prompt_tokens: 100, cached_tokens: 100, completion_tokens: 10 };
    for (i, latency) in [5, 7, 6].into_iter().enumerate() {
        ledger.append(&[call(DAY2 + i as i64, "s2", "llama-3b", local, latency)]).unwrap();
    }
    let odd = Usage { prompt_tokens: 10, cached_tokens: 0, completion_tokens: 1 };
    ledger.append(&[call(DAY2 + 9, "s2", "mystery", odd, 1)]).unwrap();
}

#[test]
fn summary_numbers_on_a_known_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    known_calls(&ledger);

    let by_model = ledger.summary(GroupBy::Model, None).unwrap();
    let keys: Vec<&str> = by_model.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["llama-3b", "m-large", "mystery"]);
    let large = &by_model[1];
    assert_eq!(large.calls, 10);
    assert_eq!(
        (large.prompt_tokens, large.cached_tokens, large.completion_tokens),
        (10_000_000, 2_500_000, 5_000_000)
    );
    // Per call: 750k fresh * 2.0 + 250k cached * 0.5 + 500k * 8.0, per million = 5.625.
    assert_eq!(large.cost, 56.25);
    assert_eq!(large.unpriced_calls, 0);
    assert_eq!((large.latency_p50_ms, large.latency_p90_ms, large.latency_p99_ms), (50, 90, 100));
    assert_eq!(large.cache_hit_rate, 0.25);
    let llama = &by_model[0];
    assert_eq!((llama.calls, llama.cost, llama.cache_hit_rate), (3, 0.0, 1.0));
    assert_eq!((llama.latency_p50_ms, llama.latency_p90_ms, llama.latency_p99_ms), (6, 7, 7));
    let mystery = &by_model[2];
    assert_eq!((mystery.cost, mystery.unpriced_calls), (0.0, 1));

    let by_day = ledger.summary(GroupBy::Day, None).unwrap();
    let days: Vec<(&str, u64)> = by_day.iter().map(|r| (r.key.as_str(), r.calls)).collect();
    assert_eq!(days, [("2024-03-01", 10), ("2024-03-02", 4)]);

    let by_endpoint = ledger.summary(GroupBy::Endpoint, None).unwrap();
    let endpoints: Vec<(&str, u64)> =
        by_endpoint.iter().map(|r| (r.key.as_str(), r.calls)).collect();
    assert_eq!(endpoints, [(REMOTE, 11), ("in-process:llama", 3)]);

    let since = ledger.summary(GroupBy::Session, Some(DAY2)).unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!((since[0].key.as_str(), since[0].calls, since[0].prompt_tokens), ("s2", 4, 310));
    assert_eq!(since[0].cache_hit_rate, 300.0 / 310.0);
}

#[test]
fn csv_export_has_a_header_and_one_line_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    known_calls(&ledger);
    ledger.append(&[Entry::now("s3", note(serde_json::Value::Null))]).unwrap();

    let mut out = Vec::new();
    ledger.export_csv(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 14, "notes are not model calls");
    assert!(lines[0].starts_with("id,time,session,provider,endpoint,model_requested"));
    assert_eq!(
        lines[1],
        format!(
            "1,2024-03-01T10:00:00.000Z,s1,openai,{REMOTE},m-large,m-large,,,1000000,250000,500000,,70,,,0,5.625,,,"
        )
    );
    assert!(lines[14].ends_with(",mystery,mystery,,,10,0,1,,1,,,0,,,,"), "{}", lines[14]);
}

#[test]
fn sent_lists_what_left_per_endpoint_with_merged_line_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    let sent = |time_ms, endpoint: &str, files: &[(&str, [u32; 2])]| Entry {
        time_ms,
        session: "s".into(),
        record: Sent {
            endpoint: endpoint.into(),
            request_sha256: String::new(),
            files: files
                .iter()
                .map(|(p, r)| SentFile { path: (*p).into(), lines: vec![*r] })
                .collect(),
        }
        .into(),
    };
    ledger
        .append(&[
            sent(1, "https://a.example", &[("src/main.rs", [1, 40]), ("README.md", [1, 10])]),
            sent(2, "https://b.example", &[("src/lib.rs", [5, 6])]),
            sent(3, "https://a.example", &[("src/main.rs", [30, 80]), ("src/main.rs", [100, 120])]),
        ])
        .unwrap();

    let all = ledger.sent(None).unwrap();
    assert_eq!(all.len(), 2);
    let a = &all[0];
    assert_eq!(
        (a.endpoint.as_str(), a.requests, a.first_ms, a.last_ms),
        ("https://a.example", 2, 1, 3)
    );
    let files: Vec<(&str, &[[u32; 2]])> =
        a.files.iter().map(|f| (f.path.as_str(), &f.lines[..])).collect();
    assert_eq!(files, [("README.md", &[[1, 10]][..]), ("src/main.rs", &[[1, 80], [100, 120]][..])]);

    let b = ledger.sent(Some("https://b.example")).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].files, [SentFile { path: "src/lib.rs".into(), lines: vec![[5, 6]] }]);
    assert!(ledger.sent(Some("https://c.example")).unwrap().is_empty());
}

#[test]
fn by_model_files_failed_and_successful_calls_under_the_requested_name() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    let usage = Usage { prompt_tokens: 10, cached_tokens: 0, completion_tokens: 2 };
    let mut ok = call(DAY1, "s", "qwen", usage, 5);
    if let tiller_ledger::Record::ModelCall(c) = &mut ok.record {
        // As llama-server answers: the model file's path.
        c.model_returned = "/models/qwen-7b-q4.gguf".into();
    }
    let mut failed = call(DAY1 + 1, "s", "qwen", Usage::default(), 5);
    if let tiller_ledger::Record::ModelCall(c) = &mut failed.record {
        c.model_returned = String::new();
        c.error = Some("HTTP 503".into());
    }
    ledger.append(&[ok, failed]).unwrap();
    let rows = ledger.summary(GroupBy::Model, None).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].key.as_str(), rows[0].calls, rows[0].failed_calls), ("qwen", 2, 1));
    assert_eq!(rows[0].returned, ["/models/qwen-7b-q4.gguf"]);
}

#[test]
fn absurd_usage_saturates_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    let huge = Usage { prompt_tokens: u64::MAX, cached_tokens: 0, completion_tokens: u64::MAX };
    let small = Usage { prompt_tokens: 5, cached_tokens: 0, completion_tokens: 5 };
    ledger
        .append(&[call(DAY1, "s", "llama", huge, 1), call(DAY1 + 1, "s", "llama", small, 1)])
        .unwrap();
    let rows = ledger.summary(GroupBy::Session, None).unwrap();
    assert_eq!((rows[0].prompt_tokens, rows[0].completion_tokens), (u64::MAX, u64::MAX));
}

#[test]
fn rows_kept_aside_are_added_once_and_keep_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.db")).unwrap();
    let rows: Vec<Entry> = (0..3)
        .map(|i| Entry {
            time_ms: DAY1 + i,
            session: "s".into(),
            record: note(serde_json::json!({ "i": i })).into(),
        })
        .collect();
    ledger.append(&rows[..1]).unwrap();
    // Kept aside as JSON (in a session log) and read back.
    let kept: Vec<Entry> = serde_json::from_str(&serde_json::to_string(&rows).unwrap()).unwrap();
    assert_eq!(ledger.append_missing(&kept).unwrap(), 2);
    assert_eq!(ledger.append_missing(&kept).unwrap(), 0);
    assert_eq!(ledger.verify().unwrap(), Verification { checked: 3, broken: None });
}

#[test]
fn a_ledger_can_be_read_without_writing_and_a_damaged_one_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    known_calls(&Ledger::open(&db).unwrap());
    let ledger = Ledger::open_read_only(&db).unwrap();
    assert!(ledger.verify().unwrap().is_ok());
    assert_eq!(ledger.summary(GroupBy::Day, None).unwrap().len(), 2);
    let refused = ledger.append(&[call(DAY2, "s", "llama", Usage::default(), 1)]).unwrap_err();
    assert_eq!(refused.trouble(), Some(tiller_ledger::Trouble::ReadOnly), "{refused}");

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database, only text long enough to look like a file ".repeat(200))
        .unwrap();
    let err = Ledger::open(&junk).err().unwrap();
    assert_eq!(err.trouble(), Some(tiller_ledger::Trouble::Damaged), "{err}");
}

//! What recording a turn costs: one model call and three tool actions appended as one batch,
//! against a reference measured in the same run on the same disk: the same rows, already
//! encoded, written with plain INSERTs in one transaction per turn, with no JSON encoding, no
//! chain read and no hashing. Also shows what `synchronous=FULL` would add to the reference.
//!
//! `cargo bench -p tiller-ledger --bench append`

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tiller_ledger::{Entry, FileHashes, Ledger, ModelCall, ToolAction, sha256_hex};
use tiller_types::Usage;

const TURNS_PER_ROUND: u32 = 500;
const ROUNDS: u32 = 6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let turn = turn();
    let ledger = Ledger::open(dir.path().join("ledger.db"))?;
    let normal = reference_db(&dir.path().join("normal.db"), "NORMAL")?;
    let full = reference_db(&dir.path().join("full.db"), "FULL")?;
    let rows = turn
        .iter()
        .map(|e| Ok((e.record.kind().to_owned(), e.record.payload()?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()?;

    // Rounds alternate so that disk and CPU noise falls on all three alike.
    let (mut t_ledger, mut t_normal, mut t_full) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for round in 0..=ROUNDS {
        let a = time(|| ledger.append(&turn).map_err(Into::into))?;
        let b = time(|| insert_plain(&normal, &rows))?;
        let c = time(|| insert_plain(&full, &rows))?;
        // Round 0 warms caches and is not counted.
        if round > 0 {
            (t_ledger, t_normal, t_full) = (t_ledger + a, t_normal + b, t_full + c);
        }
    }
    assert!(ledger.verify()?.is_ok());

    let per_call = |t: Duration| t.as_secs_f64() * 1e6 / f64::from(TURNS_PER_ROUND * ROUNDS);
    let (l, n, f) = (per_call(t_ledger), per_call(t_normal), per_call(t_full));
    println!(
        "turn = 1 model call + 3 tool actions, one transaction; {} turns",
        TURNS_PER_ROUND * ROUNDS
    );
    println!("ledger append (JSON, chain, SHA-256), synchronous=NORMAL: {l:8.1} us per call");
    println!("reference: plain INSERTs,              synchronous=NORMAL: {n:8.1} us per call");
    println!("ratio ledger / reference: {:.2}x", l / n);
    println!(
        "for scale: plain INSERTs with synchronous=FULL: {f:8.1} us per call ({:.2}x the reference)",
        f / n
    );
    Ok(())
}

fn time(
    mut one_turn: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    for _ in 0..TURNS_PER_ROUND {
        one_turn()?;
    }
    Ok(start.elapsed())
}

/// A typical turn's entries: an edit, a test run and a search.
fn turn() -> Vec<Entry> {
    let call = ModelCall {
        provider: "openai".into(),
        endpoint: Some("https://api.example.com/v1".into()),
        model_requested: "m-large".into(),
        model_returned: "m-large-2025-01-01".into(),
        temperature: Some(0.2),
        max_tokens: Some(4096),
        usage: Usage { prompt_tokens: 18_234, cached_tokens: 16_000, completion_tokens: 412 },
        ttft_ms: Some(640),
        latency_ms: 5_210,
        decode_tps: Some(90.2),
        http_status: Some(200),
        retries: 0,
        cost: Some(0.0123),
        request_sha256: sha256_hex(b"request"),
        response_sha256: sha256_hex(b"response"),
        error: None,
    };
    let file = |path: &str| FileHashes {
        path: path.into(),
        before_sha256: Some(sha256_hex(path.as_bytes())),
        after_sha256: Some(sha256_hex(b"after")),
    };
    let tool = |tool: &str, arguments, exit_code, files| ToolAction {
        tool: tool.into(),
        arguments,
        exit_code,
        duration_ms: 120,
        files,
        mcp: None,
    };
    let mut entries = vec![Entry::now("session-0001", call)];
    for action in [
        tool(
            "edit",
            serde_json::json!({ "path": "src/main.rs", "old": "foo()", "new": "bar()" }),
            None,
            vec![file("src/main.rs")],
        ),
        tool("shell", serde_json::json!({ "command": "cargo test -p demo" }), Some(0), Vec::new()),
        tool("grep", serde_json::json!({ "pattern": "fn bar", "path": "src" }), None, Vec::new()),
    ] {
        entries.push(Entry::now("session-0001", action));
    }
    entries
}

/// A table like the ledger's, in a file with the ledger's settings and the given `synchronous`.
fn reference_db(path: &Path, synchronous: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.execute_batch(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,
            session TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
         CREATE INDEX entries_kind_time ON entries (kind, time_ms);
         CREATE INDEX entries_session ON entries (session);",
    )?;
    Ok(conn)
}

fn insert_plain(
    conn: &Connection,
    rows: &[(String, String)],
) -> Result<(), Box<dyn std::error::Error>> {
    const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO entries (time_ms, session, kind, payload, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (kind, payload) in rows {
            insert.execute(params![0, "session-0001", kind, payload, HASH, HASH])?;
        }
    }
    tx.commit()?;
    Ok(())
}

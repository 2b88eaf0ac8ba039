//! Fuzzes the session-log reader: any file content must give a session (damaged lines counted),
//! never a panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let session = tiller_agent::parse_session(Path::new("fuzz.jsonl"), data);
    let lines = data.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()).count();
    assert!(session.skipped_lines <= lines);
});

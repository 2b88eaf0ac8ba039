//! Fuzzes the patch parser and, for every patch it accepts, the applier: any input must give a
//! patch or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tiller_tools::{PatchOp, apply_chunks, parse_patch};

/// The file every update is applied to: CRLF and LF ends, typographic quotes, blank lines and no
/// final newline, so that each matching level and line-end rule is reached.
const FILE: &str = "fn main() {\r\n    println!(\u{201C}hi\u{201D});\r\n}\r\n\n  \nend";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(patch) = parse_patch(text) else {
        return;
    };
    for op in &patch.ops {
        if let PatchOp::Update { chunks, .. } = op {
            for old in [FILE, ""] {
                if let Ok(new) = apply_chunks("f", old, chunks) {
                    // Applying what came out with no chunks must give it back unchanged.
                    assert_eq!(apply_chunks("f", &new, &[]).as_deref(), Ok(new.as_str()));
                }
            }
        }
    }
});

//! Fuzzes the engine's reading of tool calls from the model's text: any text must give a call
//! or nothing (and a salvaged call), never a panic; a parsed call's arguments are JSON. Every
//! family's format reads some call (perhaps a salvaged one) from any text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tiller_llama::grammar::{parse_call, salvage_call};
use tiller_llama::tool_format::ToolFormat;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((_, arguments)) = parse_call(text) {
        assert!(serde_json::from_str::<serde_json::Value>(&arguments).is_ok(), "{arguments}");
    }
    let _ = salvage_call(text);
    for format in ToolFormat::ALL {
        assert!(!format.parse(text, &[]).is_empty(), "{format:?}");
    }
});

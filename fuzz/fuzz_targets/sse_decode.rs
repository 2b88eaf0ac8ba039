//! Fuzzes the streamed-answer readers of both API families: the server-sent-events reader and
//! the OpenAI-compatible and Anthropic decoders behind it. Any body must give an answer or an
//! error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let _ = tiller_model::decode_body(which & 1 == 1, body);
});

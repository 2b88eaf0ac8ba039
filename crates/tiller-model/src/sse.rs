//! Reading a streamed answer's body: server-sent events, line by line, and (for the fuzz
//! targets) a whole body through a provider's stream decoder.

use std::io::{self, BufRead, Read};
use std::time::Duration;

use tiller_types::StreamEvent;

use crate::http::{Decoder, MAX_EVENT, SseEvent, io_error};
use crate::{Collector, Completion, ModelError};

/// Reads server-sent events, passing each to `on_event` until it returns false or the body
/// ends. Comments and fields other than `event` and `data` are skipped; a partial last line is
/// dropped (the caller sees the stream end without its end marker).
pub fn read_events(
    mut reader: impl BufRead,
    mut on_event: impl FnMut(SseEvent) -> bool,
) -> io::Result<()> {
    let too_long = || io::Error::new(io::ErrorKind::InvalidData, "event larger than 16 MiB");
    let mut ev = SseEvent::default();
    let mut has_data = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_EVENT as u64 + 1).read_until(b'\n', &mut line)?;
        if n > MAX_EVENT {
            return Err(too_long());
        }
        if !line.ends_with(b"\n") {
            break;
        }
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
        if line.is_empty() {
            // A blank `data:` is a keep-alive some proxies send: not an event.
            if has_data && !ev.data.trim().is_empty() && !on_event(std::mem::take(&mut ev)) {
                return Ok(());
            }
            (ev, has_data) = (SseEvent::default(), false);
            continue;
        }
        let text = std::str::from_utf8(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text, ""),
        };
        match field {
            // An empty field name is a comment (`: keep-alive`).
            "data" => {
                if has_data {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
                has_data = true;
                if ev.data.len() > MAX_EVENT {
                    return Err(too_long());
                }
            }
            "event" => ev.event = value.to_string(),
            _ => {}
        }
    }
    // Some servers close right after an event's last line, without the blank line.
    if has_data {
        on_event(ev);
    }
    Ok(())
}

/// Runs `body` through the event reader and the stream decoder of the Anthropic API (`true`) or
/// of OpenAI-compatible endpoints, as a response body would go: any bytes give an answer or an
/// error, never a panic. For the fuzz targets.
#[doc(hidden)]
pub fn decode_body(anthropic: bool, body: &[u8]) -> Result<Completion, ModelError> {
    fn run<D: Decoder>(body: &[u8]) -> Result<Completion, ModelError> {
        let mut sink = |_: &StreamEvent| {};
        let mut out = Collector::new(&mut sink);
        let mut decoder = D::default();
        let mut failed = None;
        let read = read_events(body, |ev| match decoder.event(&ev, &mut out, "fuzz") {
            Ok(done) => !done,
            Err(e) => {
                failed = Some(e);
                false
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        read.map_err(|e| io_error(&e, "fuzz", Duration::ZERO))?;
        decoder.eof(&mut out);
        Ok(out.finish("fuzz".into(), None, 0))
    }
    match anthropic {
        true => run::<crate::anthropic::Stream>(body),
        false => run::<crate::openai::Stream>(body),
    }
}

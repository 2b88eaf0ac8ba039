//! Turns the bytes of sampled tokens into what the caller sees: text deltas that never split a
//! UTF-8 character, never show part of a stop sequence, and stop before a tool call, whose text
//! is gathered apart from its family's start marker on. In tiller's own format one call ends the
//! reply at its end marker, but not at an end marker inside the call's JSON (in a string, or
//! before the object closes): small models write `</tool_call>` into an argument, and cutting
//! there would leave a call that cannot be parsed. In the other formats, which may hold several
//! calls, the calls run to the end of the reply.

use crate::template::{TOOL_CALL_END, TOOL_CALL_START};
use crate::tool_format::ToolFormat;

/// What the output says after a token.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Text that can be shown (may be empty).
    Text(String),
    /// A stop sequence was produced; the text before it is given.
    Stop(String),
    /// A tool call's end marker was produced; the text before the call is given.
    CallEnd(String),
}

/// The state of one reply being generated.
pub struct Output {
    stops: Vec<String>,
    /// The format tool calls are looked for in, if they are.
    calls: Option<ToolFormat>,
    /// Bytes of an incomplete UTF-8 character.
    partial: Vec<u8>,
    /// Text held back because it may begin a stop sequence or the call marker.
    held: String,
    /// The tool call's text, from its start marker on, once one began.
    call: Option<String>,
}

impl Output {
    pub fn new(stops: Vec<String>, calls: Option<ToolFormat>) -> Self {
        Output {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            calls,
            partial: Vec::new(),
            held: String::new(),
            call: None,
        }
    }

    /// Takes the bytes of one token.
    pub fn push(&mut self, bytes: &[u8]) -> Step {
        self.partial.extend_from_slice(bytes);
        let text = take_utf8(&mut self.partial);
        if let Some(call) = &mut self.call {
            call.push_str(&text);
            return if self.calls == Some(ToolFormat::Tiller) && close_call(call) {
                Step::CallEnd(String::new())
            } else {
                Step::Text(String::new())
            };
        }
        self.held.push_str(&text);

        let stop_at = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        let call_at = self.calls.and_then(|f| self.held.find(f.start()));
        match (stop_at, call_at) {
            (Some(s), c) if c.is_none_or(|c| s <= c) => {
                let mut before = std::mem::take(&mut self.held);
                before.truncate(s);
                Step::Stop(before)
            }
            (_, Some(c)) => {
                let mut call = self.held.split_off(c);
                let before = std::mem::take(&mut self.held);
                let done = self.calls == Some(ToolFormat::Tiller) && close_call(&mut call);
                self.call = Some(call);
                if done { Step::CallEnd(before) } else { Step::Text(before) }
            }
            _ => {
                let keep = self.may_begin_marker(&self.held);
                let rest = self.held.split_off(self.held.len() - keep);
                Step::Text(std::mem::replace(&mut self.held, rest))
            }
        }
    }

    /// The text still held back (with any incomplete character, replaced) once generation ended.
    pub fn flush(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            text.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.partial)));
        }
        match &mut self.call {
            Some(call) => {
                call.push_str(&text);
                String::new()
            }
            // Generation stopped inside the call's start marker: an unfinished call, not text.
            None if !text.is_empty()
                && self.calls.is_some_and(|f| f.start().starts_with(&text)) =>
            {
                self.call = Some(text);
                String::new()
            }
            None => text,
        }
    }

    /// The tool call's text, if one began.
    pub fn call(&self) -> Option<&str> {
        self.call.as_deref()
    }

    /// Bytes at the end of `text` that could begin a stop sequence or the call marker.
    fn may_begin_marker(&self, text: &str) -> usize {
        let marker = self.calls.map(ToolFormat::start);
        self.stops
            .iter()
            .map(String::as_str)
            .chain(marker)
            .map(|m| longest_suffix_prefix(text, m))
            .max()
            .unwrap_or(0)
    }
}

/// Whether `call` (from its start marker on) holds a complete call: a JSON object followed by
/// the end marker. If so, anything after that marker is dropped.
fn close_call(call: &mut String) -> bool {
    let body_start = TOOL_CALL_START.len().min(call.len());
    let mut from = body_start;
    while let Some(at) = call[from..].find(TOOL_CALL_END).map(|i| from + i) {
        let body = &call[body_start..at];
        if serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| v.is_object()) {
            call.truncate(at + TOOL_CALL_END.len());
            return true;
        }
        from = at + TOOL_CALL_END.len();
    }
    false
}

/// The length of the longest proper suffix of `text` that is a prefix of `marker`.
fn longest_suffix_prefix(text: &str, marker: &str) -> usize {
    let most = marker.len().saturating_sub(1).min(text.len());
    (1..=most)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

/// Takes the complete characters from the front of `bytes`, leaving an incomplete last one.
/// Bytes that can never be valid become U+FFFD.
fn take_utf8(bytes: &mut Vec<u8>) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                bytes.clear();
                return out;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // Checked by from_utf8 just above.
                out.push_str(std::str::from_utf8(&bytes[..valid]).unwrap_or_default());
                match e.error_len() {
                    None => {
                        bytes.drain(..valid);
                        return out;
                    }
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        bytes.drain(..valid + bad);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(out: &mut Output, pieces: &[&[u8]]) -> Vec<Step> {
        pieces.iter().map(|p| out.push(p)).collect()
    }

    fn text(s: &str) -> Step {
        Step::Text(s.into())
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        let mut out = Output::new(vec![], None);
        let euro = "€".as_bytes();
        let steps = run(&mut out, &[b"a", &euro[..1], &euro[1..2], &euro[2..], b"b"]);
        assert_eq!(steps, vec![text("a"), text(""), text(""), text("€"), text("b")]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut out = Output::new(vec![], None);
        assert_eq!(out.push(b"a\xFFb"), text("a\u{FFFD}b"));
        assert_eq!(out.push(&"é".as_bytes()[..1]), text(""));
        assert_eq!(out.flush(), "\u{FFFD}");
    }

    #[test]
    fn stop_sequences_are_held_back_then_cut() {
        let mut out = Output::new(vec!["\nUser:".into()], None);
        let steps = run(&mut out, &[b"Hi", b"\nUs", b"er: more"]);
        assert_eq!(steps, vec![text("Hi"), text(""), Step::Stop("".into())]);

        let mut out = Output::new(vec!["\nUser:".into()], None);
        let steps = run(&mut out, &[b"Hi", b"\nUs", b"e it"]);
        assert_eq!(steps, vec![text("Hi"), text(""), text("\nUse it")]);
        assert_eq!(out.flush(), "");
    }

    #[test]
    fn a_tool_call_is_gathered_apart() {
        let mut out = Output::new(vec![], Some(ToolFormat::Tiller));
        let steps =
            run(&mut out, &[b"Sure. <", b"tool_", b"call>{\"name\"", b": \"x\"}</tool", b"_call>"]);
        assert_eq!(
            steps,
            vec![text("Sure. "), text(""), text(""), text(""), Step::CallEnd(String::new())]
        );
        assert_eq!(out.call(), Some("<tool_call>{\"name\": \"x\"}</tool_call>"));
    }

    #[test]
    fn an_end_marker_inside_the_json_does_not_end_the_call() {
        let mut out = Output::new(vec![], Some(ToolFormat::Tiller));
        let steps = run(
            &mut out,
            &[b"<tool_call>{\"name\": \"answer\", \"arguments\": {\"text\": \"", b"}}</tool_call>"],
        );
        assert_eq!(steps, vec![text(""), text("")], "the marker is inside a string");
        assert_eq!(out.push(b"\"}}</tool_call>"), Step::CallEnd(String::new()));
        let call = out.call().unwrap();
        assert_eq!(
            crate::grammar::parse_call(call),
            Some(("answer".into(), r#"{"text": "}}</tool_call>"}"#.into()))
        );
    }

    #[test]
    fn text_after_the_end_marker_is_dropped() {
        let mut out = Output::new(vec![], Some(ToolFormat::Tiller));
        assert_eq!(
            out.push(b"<tool_call>{\"name\": \"x\"}</tool_call>\nmore"),
            Step::CallEnd("".into())
        );
        assert_eq!(out.call(), Some("<tool_call>{\"name\": \"x\"}</tool_call>"));
    }

    #[test]
    fn a_call_in_one_piece_ends_at_once() {
        let mut out = Output::new(vec!["STOP".into()], Some(ToolFormat::Tiller));
        let step = out.push(b"ok <tool_call>{}</tool_call>");
        assert_eq!(step, Step::CallEnd("ok ".into()));
    }

    #[test]
    fn markers_are_only_looked_for_with_tools() {
        let mut out = Output::new(vec![], None);
        assert_eq!(out.push(b"<tool_call>"), text("<tool_call>"));
        assert_eq!(out.call(), None);
    }

    #[test]
    fn unfinished_calls_keep_their_text() {
        let mut out = Output::new(vec![], Some(ToolFormat::Tiller));
        out.push(b"<tool_call>{\"na");
        out.push(&"é".as_bytes()[..1]);
        assert_eq!(out.flush(), "");
        assert_eq!(out.call(), Some("<tool_call>{\"na\u{FFFD}"));
    }

    #[test]
    fn a_stop_inside_the_start_marker_leaves_an_unfinished_call() {
        let mut out = Output::new(vec![], Some(ToolFormat::Tiller));
        assert_eq!(out.push(b"<tool_"), text(""));
        assert_eq!(out.flush(), "");
        assert_eq!(out.call(), Some("<tool_"));
    }

    #[test]
    fn suffix_prefix_respects_char_boundaries() {
        assert_eq!(longest_suffix_prefix("ab<tool", TOOL_CALL_START), 5);
        assert_eq!(longest_suffix_prefix("é", "\u{e9}x"), 2);
        assert_eq!(longest_suffix_prefix("abc", "x"), 0);
    }
}

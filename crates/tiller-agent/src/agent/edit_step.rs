//! An edit step with candidates: when the model's turn is one edit while the project's tests
//! fail, the model's departures from the lines the failure points to are checked with its own
//! edit by the tests in a scratch copy of the workspace (`candidates.rs`), and, where none
//! passes, those lines written again by the model, several times. A turn that repeats a call
//! is an edit step too, without the call as a candidate. While the tests pass, an edit may not
//! make them fail.

use std::collections::HashSet;
use std::time::Instant;

use tiller_ledger::Note;
use tiller_model::{Cancel, Completion, ModelError, Provider, Request, ToolChoice};
use tiller_tools::{SuiteResult, ToolKind, is_test_path};
use tiller_types::{AgentEvent, Message, ToolCall};

use super::Agent;
use crate::AgentError;
use crate::candidates::{self, Candidate};
use crate::localise::{self, Region};

/// What checking an edit step found.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Checked {
    /// Nothing was checked.
    Not,
    /// The call (maybe a candidate put in its place) makes the failing tests pass.
    Fixes,
    /// The call is not to run; the model is told this instead (a repeated call is told so).
    Refused(String),
    /// New candidates were checked in the call's place and none passes: the model is told this
    /// instead; the call, even repeated, brought something new.
    Tried(String),
}

/// Added to the result of the edit a candidate made pass: the model's next turn is its answer.
pub(super) const FIXED: &str = "\nThe tests pass now. Say in one sentence what you changed.";

/// What the model is told of an edit whose change, and every candidate's, failed before.
const TRIED: &str = "Not applied: the tests failed with this change before, and with every \
     other candidate. Try a different change.";

impl Agent {
    /// At an edit step (a turn whose one call is an edit) with candidates on. While the tests
    /// fail: samples more edits, checks them and the model's own, and puts the passing one with
    /// the smallest change in place of the model's call. While they pass: checks the model's
    /// edit of code that is not a test, which may not make them fail.
    pub(super) fn edit_step(
        &mut self,
        mut completion: Completion,
        step: u32,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(Completion, Checked), AgentError> {
        let Some((call, edit)) = self.edit_call(&completion) else {
            return Ok((completion, Checked::Not));
        };
        let Some(now) = self.tests_now() else {
            return Ok((completion, Checked::Not));
        };
        if now.green() {
            let checked = if edit { self.keeps_passing(call) } else { Checked::Not };
            return Ok((completion, checked));
        }
        let failing: Vec<String> = now.failed.keys().cloned().collect();
        let own = edit.then(|| call.clone());
        let regions = localise::region(&self.ws, &now.output).map(|region| {
            let callees = localise::callees(&self.ws, &region);
            [vec![region], callees].concat()
        });
        let mut checked = Vec::new();
        match regions {
            Some(regions) if self.tools.get("replace").is_some() => {
                let region = &regions[self.rounds % regions.len()];
                // Departures are the model's most likely first: each round on a region asks for
                // more (the engine decodes only the new ones), and those checked before are left
                // out.
                let depth = 1 + self.rounds / regions.len();
                self.rounds += 1;
                let request = rewrite_request(region, &now);
                // The departures cost a few tokens each, the rewrites the whole region: these
                // are asked for only when no departure passes.
                let departed = self.departures(region, &request, depth, events)?;
                let first = own.into_iter().chain(departed).collect();
                if !self.check_more(first, &failing, step, &mut checked)? {
                    return Ok((completion, Checked::Not));
                }
                if candidates::best(&checked).is_none() {
                    let rewrites = self.rewrites(region, &request, events)?;
                    if !self.check_more(rewrites, &failing, step, &mut checked)? {
                        return Ok((completion, Checked::Not));
                    }
                }
            }
            _ if !edit => return Ok((completion, Checked::Not)),
            _ => {
                let mut request = self.step_request();
                request.only_calls(&call.name);
                request.tool_choice = ToolChoice::Required;
                let n = self.config.candidates - 1;
                let replies = self.sample(&request, events, |p, c| p.complete_n(&request, n, c))?;
                let more = replies.into_iter().filter_map(|c| c.tool_calls.into_iter().next());
                let calls = own.into_iter().chain(more).collect();
                if !self.check_more(calls, &failing, step, &mut checked)? {
                    return Ok((completion, Checked::Not));
                }
            }
        }
        if checked.is_empty() {
            let checked = if edit { Checked::Refused(TRIED.into()) } else { Checked::Not };
            return Ok((completion, checked));
        }
        let passed = checked.iter().filter(|c| c.verdict == candidates::Verdict::Passes).count();
        events(&AgentEvent::Candidates { call_id: call.id.clone(), passed, total: checked.len() });
        match candidates::best(&checked) {
            Some(best) => {
                completion.tool_calls[0] = ToolCall { id: call.id, ..best.call.clone() };
                Ok((completion, Checked::Fixes))
            }
            None => {
                let again = if edit { "" } else { "Not run: you made this same call before.\n" };
                Ok((completion, Checked::Tried(again.to_string() + &candidates::report(&checked))))
            }
        }
    }

    /// The model's departures from the lines at fault of `region`, alone and in pairs, as edits.
    fn departures(
        &mut self,
        region: &Region,
        request: &Request,
        depth: usize,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<Vec<ToolCall>, AgentError> {
        let old = region.lines.join("\n");
        let given = &old[opening(&region.lines[0]).len()..];
        let n = DEPARTURES * self.config.candidates * depth;
        // A comment's change changes nothing the tests see.
        let held: Vec<usize> = (0..region.lines.len())
            .filter(|&i| localise::is_comment(&region.path, &region.lines[i]))
            .collect();
        let departed =
            self.sample(request, events, |p, c| p.departures(request, given, &held, n, c))?;
        let departed: Vec<String> =
            departed.iter().filter_map(|c| rewrite(region, &c.content)).collect();
        let pairs = candidates::pairs(&old, &departed, self.config.candidates * depth);
        Ok(departed.into_iter().chain(pairs).map(|new| replace_call(region, &new)).collect())
    }

    /// The model's rewrites of the lines at fault of `region`, and each change inside one
    /// alone, as edits.
    fn rewrites(
        &mut self,
        region: &Region,
        request: &Request,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<Vec<ToolCall>, AgentError> {
        let n = self.config.candidates - 1;
        let replies = self.sample(request, events, |p, c| p.complete_n(request, n, c))?;
        let rewrites: Vec<String> =
            replies.iter().filter_map(|c| rewrite(region, &c.content)).collect();
        let old = region.lines.join("\n");
        let parts =
            rewrites.iter().flat_map(|new| candidates::parts(&old, new)).collect::<Vec<_>>();
        Ok(rewrites.into_iter().chain(parts).map(|new| replace_call(region, &new)).collect())
    }

    /// Checks `calls` as candidates while the tests fail, records them and adds them to
    /// `checked`; false where they could not be checked.
    fn check_more(
        &mut self,
        calls: Vec<ToolCall>,
        failing: &[String],
        step: u32,
        checked: &mut Vec<Candidate>,
    ) -> Result<bool, AgentError> {
        let Some(more) = self.check(calls, Some(failing)) else {
            return Ok(false);
        };
        self.record_candidates(step, checked.len(), &more)?;
        let failed = more.iter().filter(|c| matches!(c.verdict, candidates::Verdict::Fails(_)));
        self.failures
            .changes
            .extend(failed.filter_map(|c| c.changes.as_ref()).map(candidates::fingerprint));
        checked.extend(more);
        Ok(true)
    }

    /// Whether the tests still pass with `call`, an edit made while they pass; an edit of tests
    /// alone is not checked (a new test may fail first on purpose).
    fn keeps_passing(&mut self, call: ToolCall) -> Checked {
        let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
        let path = args.get("path").and_then(|p| p.as_str());
        if path.is_some_and(is_test_path) {
            return Checked::Not;
        }
        match self.check(vec![call], None).as_deref() {
            Some([Candidate { verdict: candidates::Verdict::Fails(why), .. }]) => {
                Checked::Refused(format!(
                    "Not applied: the tests pass with the code as it is, and with this edit they \
                     fail:\n{why}\nLeave the code as it is, or make a different change."
                ))
            }
            _ => Checked::Not,
        }
    }

    /// `calls` checked in a scratch copy, or `None` (with a warning) when they could not be.
    /// While the tests fail, changes they failed with before are left out.
    fn check(
        &mut self,
        calls: Vec<ToolCall>,
        failing: Option<&[String]>,
    ) -> Option<Vec<Candidate>> {
        let checker = self.checker.as_deref()?;
        let none = HashSet::new();
        let (failing, failed) = match failing {
            Some(failing) => (failing, &self.failures.changes),
            None => (&[][..], &none),
        };
        let (tools, ws, cancel) = (&self.tools, &self.ws, &self.cancel);
        match candidates::check(tools, ws, calls, checker, failing, failed, cancel) {
            // The run stops at once; the candidates checked so far decide nothing.
            Ok(_) if self.cancel.is_cancelled() => None,
            Ok(checked) => Some(checked),
            Err(why) => {
                self.warning = Some(format!("candidate edits were not checked: {why}"));
                None
            }
        }
    }

    /// The turn's call when candidates apply to it, and whether it is an edit (a candidate
    /// itself): the turn is one call, of an edit tool, or one the model made before with the
    /// files as they are. A model that goes back to what it did is stuck; candidates in its
    /// call's place may still get on.
    fn edit_call(&self, completion: &Completion) -> Option<(ToolCall, bool)> {
        if self.config.candidates < 2 || self.unasked_checker().is_none() {
            return None;
        }
        let [call] = &completion.tool_calls[..] else {
            return None;
        };
        let edit = self.tools.get(&call.name).is_some_and(|t| t.kind() == ToolKind::Edit);
        (edit || self.failures.made(call)).then(|| (call.clone(), edit))
    }

    /// The tests' result now (run in the workspace as it is).
    fn tests_now(&mut self) -> Option<SuiteResult> {
        let result = self.checker.as_deref()?.check(self.ws.root(), &[], &self.cancel);
        match result {
            Ok(result) => Some(result),
            Err(why) => {
                self.warning = Some(format!("the tests could not run to check candidates: {why}"));
                None
            }
        }
    }

    /// The completions `ask` gets for `request` from the provider, recorded as model calls and
    /// counted in the usage.
    fn sample(
        &mut self,
        request: &Request,
        events: &mut dyn FnMut(&AgentEvent),
        ask: impl FnOnce(&mut dyn Provider, &Cancel) -> Result<Vec<Completion>, ModelError>,
    ) -> Result<Vec<Completion>, AgentError> {
        let started = Instant::now();
        let outcomes: Vec<_> = match ask(&mut *self.provider, &self.cancel) {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        let took = (started.elapsed() / outcomes.len().max(1) as u32, 0);
        if let Some(recorder) = &mut self.recorder {
            let info = self.provider.info();
            for outcome in &outcomes {
                recorder.model_call(&info, self.config.remote, request, outcome, took);
            }
        }
        self.flush()?;
        let completions = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut call = tiller_types::Usage::default();
        completions.iter().for_each(|c| call += c.usage);
        self.usage += call;
        events(&AgentEvent::Usage { call, total: self.usage });
        Ok(completions)
    }

    /// Each candidate and its verdict, as ledger notes, numbered in the step from `first` on.
    fn record_candidates(
        &mut self,
        step: u32,
        first: usize,
        checked: &[Candidate],
    ) -> Result<(), AgentError> {
        let Some(recorder) = &mut self.recorder else {
            return Ok(());
        };
        for (index, candidate) in (first..).zip(checked) {
            recorder.push(Note { topic: "candidate".into(), data: candidate.note(step, index) });
        }
        self.flush()
    }
}

/// Departures from the lines at fault asked of the model per candidate: each changes one line,
/// and costs a few tokens where a rewrite costs the whole region.
const DEPARTURES: usize = 6;

/// Bytes of the failing tests' output shown with a rewrite request.
const FAILURE_EXCERPT: usize = 1200;

/// The request for a candidate rewrite of the lines at fault: the lines and, after them as in
/// a script, the test line that fails and how, in comments; the reply begun with a code block
/// and the lines' first line, so that even a small model writes code, not prose or a call. The
/// system message shows the form on an example.
fn rewrite_request(region: &Region, now: &SuiteResult) -> Request {
    let lang = fence_language(&region.path);
    let (code, fails) = (region.lines.join("\n"), failure(region, now));
    let user = format!("```{lang}\n{code}\n\n\n{fails}```\n\n{FIX}");
    let (example, wrong, right) = example(lang);
    let system = format!(
        "You fix bugs in code. Reply with the corrected code only.\n\nFor example, to:\n\
         ```{lang}\n{wrong}\n\n\n{example}```\n\n{FIX}\n\nyou reply:\n```{lang}\n{right}\n```"
    );
    Request {
        messages: vec![Message::system(system), Message::user(user)],
        // Without its line break: a tokenizer joins the break to the next line's indentation.
        reply_start: Some(format!("```{lang}\n{}", opening(&region.lines[0]))),
        stop: vec!["```".into()],
        max_tokens: Some((code.len() / 2 + 64) as u32),
        ..Request::default()
    }
}

/// How a rewrite's reply is begun from the region's first line: the whole line where it opens
/// a function, up to its value where it is a constant (which may be what is wrong).
fn opening(line: &str) -> &str {
    match line.find('=').filter(|_| localise::CONSTANT.is_match(line)) {
        Some(at) => line[..at + 1].trim_end(),
        None => line,
    }
}

/// What a rewrite request asks for.
const FIX: &str = "Fix the function so that the test passes.";

/// Lines of failure output shown with a rewrite request, at most.
const FAILURE_LINES: usize = 3;

/// The failure as comments in the language of `region`: the failing test line, where it is
/// known, and the last lines of the output that say what went wrong.
fn failure(region: &Region, now: &SuiteResult) -> String {
    let comment =
        if matches!(region.path.rsplit('.').next(), Some("py" | "sh")) { "#" } else { "//" };
    let mut out = String::new();
    let output = now.excerpt(FAILURE_EXCERPT);
    let mut said: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| region.test.as_ref().is_none_or(|(_, test)| l != test))
        .filter(|l| SAYS_WHY.iter().any(|w| l.contains(w)) && !l.starts_with("File \""))
        .collect();
    said.dedup();
    match &region.test {
        Some((path, line)) => out.push_str(&format!("{comment} {path} fails here:\n{line}\n")),
        None => out.push_str(&format!("{comment} A test fails:\n")),
    }
    for line in &said[said.len().saturating_sub(FAILURE_LINES)..] {
        let line = tiller_types::text::clip(line, 160);
        out.push_str(&format!("{comment} {line}\n"));
    }
    out
}

/// Words of a line of test output that says what went wrong.
const SAYS_WHY: [&str; 9] =
    ["Error", "error", "panicked", "assert", "xpected", "left", "right", "!==", "FAIL"];

/// A failing test, the code at fault and its fix, in the language of fence `lang` (Python's
/// where none is written here): the form of a rewrite, shown to the model.
fn example(lang: &str) -> (&'static str, &'static str, &'static str) {
    match lang {
        "javascript" | "typescript" => (
            "// test.js fails here:\nassert.strictEqual(area(2, 3), 6);\n// AssertionError: 4 !== 6\n",
            "function area(w, h) {\n  return w * w;\n}",
            "function area(w, h) {\n  return w * h;\n}",
        ),
        "rust" => (
            "// tests/area.rs fails here:\nassert_eq!(area(2, 3), 6);\n// left: 4\n// right: 6\n",
            "fn area(w: u32, h: u32) -> u32 {\n    w * w\n}",
            "fn area(w: u32, h: u32) -> u32 {\n    w * h\n}",
        ),
        "bash" => (
            "# test.sh fails here:\n[ \"$(area 2 3)\" = 6 ] || echo \"FAIL: got $(area 2 3)\"\n# FAIL: got 4\n",
            "area() {\n  echo $(( $1 * $1 ))\n}",
            "area() {\n  echo $(( $1 * $2 ))\n}",
        ),
        _ => (
            "# test_area.py fails here:\nassert area(2, 3) == 6\n# AssertionError: 4\n",
            "def area(w, h):\n    return w * w",
            "def area(w, h):\n    return w * h",
        ),
    }
}

/// The lines a rewrite's reply puts in place of the region's: the code in its first code block
/// (or the whole reply, where it has none); `None` when they are none or the same.
fn rewrite(region: &Region, reply: &str) -> Option<String> {
    let code = match reply.split_once("```") {
        Some((_, rest)) => {
            let rest = rest.split_once('\n').map_or("", |(_, code)| code);
            rest.split("```").next().unwrap_or(rest)
        }
        None => reply,
    };
    let new = code.trim_end().trim_start_matches('\n');
    (!new.trim().is_empty() && new != region.lines.join("\n")).then(|| new.to_string())
}

/// The `replace` call that puts `new` in place of the region's lines.
fn replace_call(region: &Region, new: &str) -> ToolCall {
    let old = region.lines.join("\n");
    let arguments = serde_json::json!({"path": region.path, "old": old, "new": new});
    ToolCall { id: String::new(), name: "replace".into(), arguments: arguments.to_string() }
}

/// The name a code block's fence gives the language of file `path`.
fn fence_language(path: &str) -> &str {
    let ext = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match ext {
        "py" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "ts" => "typescript",
        "rs" => "rust",
        "sh" | "bash" => "bash",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        Region {
            path: "greet.py".into(),
            first: 1,
            lines: vec!["def greet(name):".into(), "    return \"Hello\"".into()],
            test: Some(("test_greet.py".into(), "assert greet(\"Ada\") == \"Hi, Ada\"".into())),
        }
    }

    #[test]
    fn a_rewrite_is_read_from_the_reply_begun_or_not() {
        let new = |reply: &str| rewrite(&region(), reply);
        let fixed = "def greet(name):\n    return \"Hi, \" + name";
        // On the engine: begun by the caller, cut at the closing fence.
        assert_eq!(new(&format!("```python\n{fixed}\n")).as_deref(), Some(fixed));
        // Elsewhere: prose around a whole block.
        assert_eq!(new(&format!("Here:\n```python\n{fixed}\n```\nDone.")).as_deref(), Some(fixed));
        assert_eq!(new("```python\ndef greet(name):\n    return \"Hello\"\n"), None, "unchanged");
        assert_eq!(new("```python\n"), None, "empty");
    }

    #[test]
    fn the_failure_is_told_as_comments_after_the_lines() {
        let output = "Traceback (most recent call last):\n  File \"test_greet.py\", line 3, in <module>\n    assert greet(\"Ada\") == \"Hi, Ada\"\nAssertionError: Hello\n";
        let now = tiller_tools::parse_output(output, false);
        let said = failure(&region(), &now);
        assert_eq!(
            said,
            "# test_greet.py fails here:\nassert greet(\"Ada\") == \"Hi, Ada\"\n# AssertionError: Hello\n"
        );
        let request = rewrite_request(&region(), &now);
        assert_eq!(request.reply_start.as_deref(), Some("```python\ndef greet(name):"));
        assert_eq!(request.stop, ["```"]);
        let constant = Region { lines: vec!["UNITS = {\"s\": 1}".into()], ..region() };
        let start = rewrite_request(&constant, &now).reply_start;
        assert_eq!(start.as_deref(), Some("```python\nUNITS ="), "the value left to write");
        let rust = Region { path: "src/lib.rs".into(), test: None, ..region() };
        let unknown =
            "// A test fails:\n// assert greet(\"Ada\") == \"Hi, Ada\"\n// AssertionError: Hello\n";
        assert_eq!(failure(&rust, &now), unknown, "no test line known: the output's lines");
    }
}

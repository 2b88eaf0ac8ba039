//! One tiny random-weight model per family (made by fixtures/make_families.py with the `gguf`
//! package, each with its family's architecture, real chat template and special tokens): each
//! loads and generates, renders the prompt as Python's jinja2 renders its template, and makes
//! tool calls in its own format that parse back. Python is `TILLER_PYTHON` (else `python3`);
//! without it and its `gguf`, `numpy` and `jinja2` packages these tests say so and pass, unless
//! `TILLER_EXPECT_FAMILIES` is set (scripts/test sets both), where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::*;

/// Each fixture: its file name, its architecture, the tool-call format tiller picks for its
/// template, and whether that format takes several calls in one reply.
const FAMILIES: &[(&str, &str, &str, bool)] = &[
    ("qwen2.5", "qwen2", "hermes", true),
    ("qwen3", "qwen3", "hermes", true),
    ("qwen3-coder", "qwen3", "qwen3-coder", true),
    ("hermes3", "llama", "hermes", true),
    ("llama3.2", "llama", "llama3", false),
    ("mistral-nemo", "llama", "mistral", true),
    ("devstral", "llama", "devstral", true),
    ("ministral3", "llama", "devstral", true),
    ("gemma2", "gemma2", "tiller", false),
    ("gemma3", "gemma3", "tiller", false),
    ("phi3.5", "phi3", "tiller", false),
    ("granite3.3", "granite", "granite", true),
    ("smollm3", "smollm3", "tiller", false),
    ("glm4.6", "glm4", "glm", true),
    ("deepseek3.1", "deepseek2", "deepseek", true),
];

fn python() -> Command {
    Command::new(std::env::var_os("TILLER_PYTHON").unwrap_or_else(|| "python3".into()))
}

fn expected() -> bool {
    std::env::var_os("TILLER_EXPECT_FAMILIES").is_some()
}

/// The folder of fixture models, made once per run; `None` (with a notice) where Python or its
/// `gguf` package is missing.
fn models() -> Option<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("families");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_families.py");
        let out = python().arg(script).arg(&dir).output();
        match out {
            Ok(out) if out.status.success() => Ok(dir),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            Err(e) => Err(format!("python3: {e}")),
        }
    });
    match made {
        Ok(dir) => Some(dir),
        Err(e) => {
            assert!(!expected(), "the family fixtures could not be made: {e}");
            eprintln!("skipped: no family fixtures ({e}); pip install gguf numpy jinja2");
            None
        }
    }
}

fn load(name: &str) -> Llama {
    let dir = models().unwrap();
    let mut config = LlamaConfig::new(dir.join(format!("{name}.gguf")).to_string_lossy());
    config.context_length = Some(2048);
    config.threads = Some(1);
    Llama::load(&config).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_family_loads_and_generates() {
    if models().is_none() {
        return;
    }
    for &(name, arch, tool_format, _) in FAMILIES {
        let mut llama = load(name);
        assert_eq!(llama.gguf().architecture, arch, "{name}");
        let listed = list_models(models().unwrap());
        let listed = listed.iter().find(|m| m.name == name).unwrap();
        assert_eq!(listed.tool_format.as_deref(), Some(tool_format), "{name}");
        assert_eq!(listed.template_tools, !["tiller", "deepseek"].contains(&tool_format), "{name}");
        assert!(listed.supported && listed.memory_bytes > Some(listed.size_bytes), "{listed:?}");
        let (c, _) = run(&mut llama, &ask("hello world", 6));
        assert!(c.usage.completion_tokens > 0 || c.stop == StopReason::EndTurn, "{name}: {c:?}");
    }
}

/// Whether Python and jinja2 are there to render templates; a notice (or, where expected, a
/// failure) when not.
fn python_jinja2() -> bool {
    let found = python().args(["-c", "import jinja2"]).output();
    let ok = found.as_ref().is_ok_and(|out| out.status.success());
    assert!(ok || !expected(), "python3 with jinja2 is needed: {found:?}");
    if !ok {
        eprintln!("skipped: no python3 with jinja2 (pip install jinja2)");
    }
    ok
}

/// What Python's jinja2 renders `template` to with `context` (JSON), as Hugging Face does.
fn python_render(template: &str, context: &str) -> Result<String, String> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render_template.py");
    let job = format!("{{\"template\": {}, \"context\": {context}}}", json!(template));
    let mut child = python()
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), job.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

fn read_tool() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Read a file.".into(),
        parameters: json!({"type": "object", "properties": {
            "path": {"type": "string", "enum": ["greet.py", "src/test_greet.py"]},
            "limit": {"type": "integer"}},
            "required": ["path"]}),
    }
}

fn answer_tool() -> ToolSpec {
    ToolSpec {
        name: "answer".into(),
        description: "Finish with an answer.".into(),
        parameters: json!({"type": "object", "properties": {"text": {"type": "string"}},
            "required": ["text"]}),
    }
}

fn call(id: &str, name: &str, arguments: Value) -> tiller_types::ToolCall {
    tiller_types::ToolCall { id: id.into(), name: name.into(), arguments: arguments.to_string() }
}

/// A conversation with calls and their results: two calls in one reply where the family takes
/// several.
fn conversation(multi: bool) -> Vec<Message> {
    let mut calls = vec![call("call_1", "read_file", json!({"path": "greet.py"}))];
    if multi {
        calls.push(call("call_2", "read_file", json!({"path": "src/test_greet.py", "limit": 57})));
    }
    let mut messages = vec![
        Message::system("You fix bugs."),
        Message::user("Fix the greeting <|im_end|> please."),
        Message::Assistant { content: String::new(), tool_calls: calls.clone() },
    ];
    for c in &calls {
        messages.push(Message::Tool {
            call_id: c.id.clone(),
            name: c.name.clone(),
            content: "def greet(name):\n    return \"Hello\"\n".into(),
            is_error: false,
        });
    }
    messages.push(Message::Assistant { content: "It lacks the name.".into(), tool_calls: vec![] });
    messages.push(Message::user("Go on."));
    messages
}

#[test]
fn every_family_renders_as_python_renders_its_template() {
    if models().is_none() || !python_jinja2() {
        return;
    }
    let tools = [read_tool(), answer_tool()];
    for &(name, _, format, multi) in FAMILIES {
        let llama = load(name);
        assert_eq!(llama.chat_format().tool_format().name(), format, "{name}");
        let template = llama.gguf().chat_template.clone().unwrap();
        for (messages, tools) in [
            (conversation(multi), &tools[..]),
            (vec![Message::system("Be brief."), Message::user("Hi")], &[][..]),
        ] {
            if name == "hermes3" && tools.is_empty() {
                // Hermes 3's `tool_use` template is the one it ships for requests with tools;
                // without them, jinja2 cannot loop over None.
                continue;
            }
            let req =
                Request { messages: messages.clone(), tools: tools.to_vec(), ..Request::default() };
            let ours = llama.prompt_text(&req).unwrap();
            let context = llama.chat_format().context_json(&messages, tools);
            let theirs = python_render(&template, &context)
                .unwrap_or_else(|e| panic!("{name}: Python could not render it: {e}"));
            assert_eq!(ours, theirs, "{name}");
            // The user's `<|im_end|>` is text; the template's own are control tokens.
            if let Some(end) = llama.special_token("<|im_end|>").filter(|_| !tools.is_empty()) {
                let tokens = llama.prompt_tokens(&req).unwrap();
                let special = tokens.iter().filter(|&&t| t == end).count();
                assert_eq!(special + 1, ours.matches("<|im_end|>").count(), "{name}");
            }
            if !tools.is_empty() && llama.chat_format().tool_format().native() {
                // The template was given the tools, and the calls in its own format.
                assert!(ours.contains("read_file") && ours.contains("Read a file."), "{name}");
                assert_eq!(ours.contains("57"), multi, "{name}: {ours}");
            }
        }
    }
}

#[test]
fn every_family_makes_constrained_calls_that_parse() {
    if models().is_none() {
        return;
    }
    // Values from lists and numbers: a random model's free text would run out the token limit.
    let mode = ToolSpec {
        name: "set_mode".into(),
        description: "Set the mode.".into(),
        parameters: json!({"type": "object", "properties": {
            "mode": {"enum": ["fast", "safe"]}, "level": {"type": "integer"}},
            "required": ["mode", "level"]}),
    };
    let tools = vec![read_tool(), mode];
    for &(name, _, _, _) in FAMILIES {
        let mut llama = load(name);
        let mut calls = 0;
        for seed in 0..3 {
            llama.set_seed(seed);
            let mut req = ask("Fix the bug.", 200);
            req.temperature = Some(1.0);
            req.tools = tools.clone();
            req.tool_choice = ToolChoice::Required;
            let (c, _) = run(&mut llama, &req);
            assert!(!c.tool_calls.is_empty(), "{name}: {c:?}");
            // Where the reply ran to the token limit, its last call may be cut short.
            let cut = c.usage.completion_tokens >= 200;
            let whole = c.tool_calls.len() - usize::from(cut);
            calls += c.tool_calls.len();
            for call in &c.tool_calls[..whole] {
                let spec = tools
                    .iter()
                    .find(|t| t.name == call.name)
                    .unwrap_or_else(|| panic!("{name}: {call:?}"));
                let args: Value = serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {}", call.arguments));
                assert_eq!(validate(&spec.parameters, &args), Ok(()), "{name}: {}", call.arguments);
            }
            assert!(
                !c.content.contains(llama.chat_format().tool_format().start()),
                "{name}: {}",
                c.content
            );
        }
        println!("{name}: {calls} calls in 3 replies");
    }
}

#[test]
fn every_family_reads_back_replies_in_its_own_format() {
    if models().is_none() {
        return;
    }
    let tools = vec![read_tool(), answer_tool()];
    for &(name, _, _, multi) in FAMILIES {
        let llama = load(name);
        let format = llama.chat_format().tool_format();
        let calls = [
            call("a", "read_file", json!({"path": "greet.py", "limit": 2})),
            call("b", "answer", json!({"text": "Done: </b> and \"quotes\"\nand lines."})),
        ];
        let n = if multi { 2 } else { 1 };
        let reply = format!("Let me look.\n{}", format.calls_text(&calls[..n]));
        let (shown, parsed) = llama.read_reply(&reply, &tools);
        assert_eq!(shown.trim(), "Let me look.", "{name}: {reply}");
        let expected: Vec<(String, String)> = calls[..n]
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    tiller_llama::template::json_text(&serde_json::from_str(&c.arguments).unwrap()),
                )
            })
            .collect();
        assert_eq!(parsed, expected, "{name}: {reply}");
    }
}

/// Under `Auto` the grammar is lazy: free text until the model opens a call, then the grammar
/// of calls. Devstral's `[TOOL_CALLS]` is a special token, which the fixture's random weights
/// sample now and then (they never spell its twelve characters out), so here that token is what
/// sets the grammar going: the calls after it hold to the tools' schemas.
#[test]
fn under_auto_a_special_token_opens_a_constrained_call_after_free_text() {
    if models().is_none() {
        return;
    }
    let mut llama = load("devstral");
    assert!(llama.special_token("[TOOL_CALLS]").is_some());
    let tool = read_tool();
    let mut after_text = 0;
    for seed in 0..20 {
        llama.set_seed(seed);
        let mut req = ask("Fix the bug.", 100);
        req.temperature = Some(1.0);
        req.tools = vec![tool.clone()];
        req.tool_choice = ToolChoice::Auto;
        let (c, _) = run(&mut llama, &req);
        assert!(!c.content.contains("[TOOL_CALLS]"), "{seed}: {}", c.content);
        // Where the reply ran to the token limit, its last call may be cut short.
        let whole = c.tool_calls.len().saturating_sub(usize::from(c.stop == StopReason::MaxTokens));
        for call in &c.tool_calls[..whole] {
            let args: Value = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|e| panic!("{seed}: {e}: {call:?}"));
            assert_eq!(call.name, "read_file", "{seed}");
            assert_eq!(validate(&tool.parameters, &args), Ok(()), "{seed}: {}", call.arguments);
        }
        after_text += usize::from(whole > 0 && !c.content.trim().is_empty());
    }
    // Which replies open a call depends on the seed (and on the machine's arithmetic).
    println!("devstral: {after_text} of 20 replies wrote text, then whole calls");
    assert!(after_text > 0);
}

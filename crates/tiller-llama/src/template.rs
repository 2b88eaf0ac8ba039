//! Turns a conversation into the prompt text a model expects: the GGUF's own
//! `tokenizer.chat_template` rendered with minijinja (in [`jinja`](crate::jinja)'s Python-like
//! environment), or, for base models that have none, a plain transcript.
//!
//! A template that takes `tools` is given them, and the conversation in OpenAI's shape as Hugging
//! Face's `apply_chat_template` passes it: assistant messages with `tool_calls` (`function.name`,
//! `function.arguments` as an object), results as `tool` messages with `tool_call_id` and
//! `name`; the model then sees its own family's format ([`ToolFormat`]). A template that renders
//! no `tool_calls` gets the calls as text in that format in the assistant's content.
//!
//! Templates that know nothing of tools get tiller's own format: tools are described in the
//! system message, tool calls become `<tool_call>{json}</tool_call>` text in the assistant's
//! message, tool results become user messages wrapped in `<tool_result name="...">`.
//!
//! Either way consecutive user messages are merged (templates such as Gemma's insist that roles
//! alternate), and a template that refuses a system message gets its text at the head of the
//! first user message.
//!
//! The plain transcript, for models without a template:
//!
//! ```text
//! <system text>
//!
//! User: <text>
//!
//! Assistant: <text>
//!
//! Assistant:
//! ```
//!
//! with `\nUser:` as a stop sequence so that the model does not write the user's next turn.

use minijinja::Environment;
use serde::Serialize;
use tiller_types::{Message, ToolCall, ToolSpec};

use crate::LlamaError;
use crate::jinja::{environment, python_json};
use crate::tool_format::{ToolFormat, mistral_id};

/// What opens a tool call in the model's reply.
pub const TOOL_CALL_START: &str = "<tool_call>";
/// What closes it.
pub const TOOL_CALL_END: &str = "</tool_call>";

/// How a model's prompts are written.
pub struct ChatFormat {
    env: Environment<'static>,
    /// The Jinja source, or `None` for the plain transcript.
    template: Option<String>,
    bos: String,
    eos: String,
    /// How the model writes tool calls.
    tool_format: ToolFormat,
    /// The template refuses a system message: its text goes at the head of the first user turn.
    fold_system: bool,
}

/// A rendered prompt.
#[derive(Debug, PartialEq)]
pub struct Prompt {
    pub text: String,
    /// Stop sequences the format needs on top of the caller's.
    pub stop: Vec<String>,
    /// Byte ranges of `text` that came from the conversation's inputs (the system prompt, the
    /// user's words, tool results), in order: text from files and commands, to be tokenized as
    /// plain text, so that a `<|im_start|>` in a file is never a control token.
    pub plain: Vec<std::ops::Range<usize>>,
}

/// What a template is rendered with.
#[derive(Serialize)]
struct Context<'a> {
    messages: Vec<TemplateMessage>,
    tools: Option<Vec<Tool<'a>>>,
    add_generation_prompt: bool,
    bos_token: &'a str,
    eos_token: &'a str,
}

/// One message as templates see it.
#[derive(Debug, PartialEq, Serialize)]
struct TemplateMessage {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<CallTurn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Debug, PartialEq, Serialize)]
struct CallTurn {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function,
}

#[derive(Debug, PartialEq, Serialize)]
struct Function {
    name: String,
    arguments: serde_json::Value,
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ToolFunction<'a>,
}

#[derive(Serialize)]
struct ToolFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

impl TemplateMessage {
    fn new(role: &'static str, content: String) -> Self {
        TemplateMessage { role, content, tool_calls: Vec::new(), tool_call_id: None, name: None }
    }
}

impl ChatFormat {
    /// A format from a GGUF's template (if any) and the text of its BOS and EOS tokens, which
    /// templates may print. A template that does not render a simple conversation is an error;
    /// one that knows tools but fails on a conversation with a call falls back to tiller's own
    /// tool format.
    pub fn new(template: Option<String>, bos: String, eos: String) -> Result<Self, LlamaError> {
        let tool_format = ToolFormat::detect(template.as_deref());
        let mut format =
            ChatFormat { env: environment()?, template, bos, eos, tool_format, fold_system: false };
        let simple = [Message::system("s"), Message::user("u")];
        if let Err(e) = format.render(&simple, &[]) {
            format.fold_system = true;
            format.render(&simple, &[]).map_err(|_| e)?;
        }
        if format.tool_format.native() && format.render(&probe(), &[probe_tool()]).is_err() {
            format.tool_format = ToolFormat::Tiller;
        }
        Ok(format)
    }

    /// Whether the model has its own chat template.
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// How the model writes tool calls.
    pub fn tool_format(&self) -> ToolFormat {
        self.tool_format
    }

    /// The prompt for `messages` with `tools` offered, ending where the assistant's reply begins.
    pub fn render(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Prompt, LlamaError> {
        let context = self.context(messages, tools);
        let Some(template) = &self.template else {
            return Ok(plain(&context.messages));
        };
        let text = self
            .env
            .render_str(template, minijinja::Value::from(minijinja::value::Serde(&context)))
            .map_err(|e| LlamaError::Template(format!("{e:#}")))?;
        let plain = input_ranges(&text, &context.messages);
        Ok(Prompt { text, stop: Vec::new(), plain })
    }

    /// What the template is given for `messages` and `tools`, as JSON (to render the template
    /// elsewhere, as the tests do with Python's jinja2).
    pub fn context_json(&self, messages: &[Message], tools: &[ToolSpec]) -> String {
        // Plain data in, so serializing cannot fail.
        serde_json::to_string(&self.context(messages, tools)).unwrap_or_default()
    }

    fn context<'a>(&'a self, messages: &[Message], tools: &'a [ToolSpec]) -> Context<'a> {
        let native = self.template.is_some() && self.tool_format.native();
        let (mut turns, calls) = if native {
            (self.native_turns(messages), self.tool_format)
        } else {
            (tiller_turns(messages), ToolFormat::Tiller)
        };
        let takes_tools = native && self.tool_format.template_takes_tools();
        if !takes_tools && !tools.is_empty() {
            add_to_system(&mut turns, describe_tools(calls, tools));
        }
        if self.fold_system && turns.first().is_some_and(|t| t.role == "system") {
            let system = turns.remove(0);
            match turns.iter_mut().find(|t| t.role == "user") {
                Some(user) => user.content = format!("{}\n\n{}", system.content, user.content),
                None => turns.insert(0, TemplateMessage::new("user", system.content)),
            }
        }
        let tools = (takes_tools && !tools.is_empty()).then(|| {
            tools
                .iter()
                .map(|t| Tool {
                    kind: "function",
                    function: ToolFunction {
                        name: &t.name,
                        description: &t.description,
                        parameters: &t.parameters,
                    },
                })
                .collect()
        });
        Context {
            messages: turns,
            tools,
            add_generation_prompt: true,
            bos_token: &self.bos,
            eos_token: &self.eos,
        }
    }

    /// The conversation in OpenAI's shape, for templates that take tools.
    fn native_turns(&self, messages: &[Message]) -> Vec<TemplateMessage> {
        let calls_in_content = !self.template.as_deref().is_some_and(|t| t.contains("tool_calls"));
        let id = |id: &str| match self.tool_format {
            ToolFormat::Mistral | ToolFormat::Devstral => mistral_id(id),
            _ => id.to_string(),
        };
        let mut turns: Vec<TemplateMessage> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let turn = match m {
                Message::System { content } if i == 0 => {
                    TemplateMessage::new("system", content.clone())
                }
                Message::System { content } | Message::User { content } => {
                    TemplateMessage::new("user", content.clone())
                }
                Message::Assistant { content, tool_calls } if calls_in_content => {
                    let calls = self.tool_format.calls_text(tool_calls);
                    let parts: Vec<&str> =
                        [content.as_str(), &calls].into_iter().filter(|s| !s.is_empty()).collect();
                    TemplateMessage::new("assistant", parts.join("\n"))
                }
                Message::Assistant { content, tool_calls } => TemplateMessage {
                    tool_calls: tool_calls
                        .iter()
                        .map(|c| CallTurn {
                            id: id(&c.id),
                            kind: "function",
                            function: Function {
                                name: c.name.clone(),
                                arguments: arguments(&c.arguments),
                            },
                        })
                        .collect(),
                    ..TemplateMessage::new("assistant", content.clone())
                },
                Message::Tool { call_id, name, content, is_error } => TemplateMessage {
                    tool_call_id: Some(id(call_id)),
                    name: Some(name.clone()),
                    ..TemplateMessage::new(
                        "tool",
                        if *is_error { format!("error: {content}") } else { content.clone() },
                    )
                },
            };
            push_merged(&mut turns, turn);
        }
        turns
    }
}

/// A conversation with a call and its result, which a template that takes tools must render.
fn probe() -> Vec<Message> {
    let call = ToolCall { id: "call_1".into(), name: "f".into(), arguments: "{\"a\": 1}".into() };
    vec![
        Message::system("s"),
        Message::user("u"),
        Message::Assistant { content: String::new(), tool_calls: vec![call] },
        Message::Tool {
            call_id: "call_1".into(),
            name: "f".into(),
            content: "r".into(),
            is_error: false,
        },
    ]
}

fn probe_tool() -> ToolSpec {
    ToolSpec {
        name: "f".into(),
        description: "d".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
    }
}

/// A call's arguments as an object, as templates expect them; text that is not JSON stays text.
pub(crate) fn arguments(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// Appends `turn`, merged into the last one where both are the user's (or both the assistant's
/// words without calls), as templates that insist on alternating roles need.
fn push_merged(turns: &mut Vec<TemplateMessage>, turn: TemplateMessage) {
    match turns.last_mut() {
        Some(last)
            if last.role == turn.role
                && matches!(turn.role, "user" | "assistant")
                && last.tool_calls.is_empty()
                && turn.tool_calls.is_empty() =>
        {
            last.content.push_str("\n\n");
            last.content.push_str(&turn.content);
        }
        _ => turns.push(turn),
    }
}

/// The system text that offers `tools` and says how to call them in `format`, ending with an
/// example call of the first tool (small models follow an example far better than a
/// description).
fn describe_tools(format: ToolFormat, tools: &[ToolSpec]) -> String {
    let mut out = String::from("# Tools\n\nAvailable tools:\n");
    for tool in tools {
        out.push_str(&format!(
            "{{\"name\": {}, \"description\": {}, \"parameters\": {}}}\n",
            json_text(&tool.name.as_str().into()),
            json_text(&tool.description.as_str().into()),
            json_text(&tool.parameters),
        ));
    }
    out.push_str(
        "\nTo use a tool, answer with one tool call and nothing else. The arguments must match \
         the tool's parameters.",
    );
    if !format.native() {
        out.push_str(" The result comes back in a <tool_result> message.");
    }
    out.push_str(" Example:\n");
    if let Some(tool) = tools.first() {
        let arguments = example_arguments(&tool.parameters).to_string();
        let example = ToolCall { id: String::new(), name: tool.name.clone(), arguments };
        out.push_str(&format.calls_text(&[example]));
        out.push('\n');
    }
    out
}

/// Placeholder arguments for a schema: its required properties with a value of each one's type.
fn example_arguments(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};
    let required = schema.get("required").and_then(Value::as_array);
    let props = schema.get("properties").and_then(Value::as_object);
    let mut args = serde_json::Map::new();
    for key in required.into_iter().flatten().filter_map(Value::as_str) {
        let prop = props.and_then(|p| p.get(key)).unwrap_or(&Value::Null);
        let value = match prop.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
            Some(first) => first.clone(),
            None => match prop.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("..."),
            },
        };
        args.insert(key.to_string(), value);
    }
    Value::Object(args)
}

/// The text of a tool call as the model writes it.
pub fn call_text(name: &str, arguments: &str) -> String {
    // Arguments are raw JSON text; malformed ones are kept as a string so that the prompt stays
    // valid JSON either way.
    let args = self::arguments(arguments);
    format!(
        "{TOOL_CALL_START}{{\"name\": {}, \"arguments\": {}}}{TOOL_CALL_END}",
        json_text(&name.into()),
        json_text(&args)
    )
}

/// JSON with a space after `:` and `,` (Python's `json.dumps` style), the form the tool grammar
/// produces, so that calls read back into the prompt look like the ones the model wrote.
pub fn json_text(value: &serde_json::Value) -> String {
    python_json(&minijinja::Value::from(minijinja::value::Serde(value)), None, 0)
}

/// The conversation for templates that know no tools, in tiller's own format.
fn tiller_turns(messages: &[Message]) -> Vec<TemplateMessage> {
    let mut turns: Vec<TemplateMessage> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, content) = match m {
            // Templates accept a system message only first; later ones are the user's words.
            Message::System { content } if i == 0 => ("system", content.clone()),
            Message::System { content } | Message::User { content } => ("user", content.clone()),
            Message::Assistant { content, tool_calls } => {
                let mut text = content.clone();
                for call in tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&call_text(&call.name, &call.arguments));
                }
                ("assistant", text)
            }
            Message::Tool { name, content, is_error, .. } => {
                let error = if *is_error { " error=\"true\"" } else { "" };
                let text =
                    format!("<tool_result name=\"{name}\"{error}>\n{content}\n</tool_result>");
                ("user", text)
            }
        };
        push_merged(&mut turns, TemplateMessage::new(role, content));
    }
    turns
}

/// Adds `text` to the end of the system message, made first where there is none (the tools'
/// description, where the template is not given them).
fn add_to_system(turns: &mut Vec<TemplateMessage>, text: String) {
    match turns.first_mut() {
        Some(first) if first.role == "system" => {
            first.content.push_str("\n\n");
            first.content.push_str(&text);
        }
        _ => turns.insert(0, TemplateMessage::new("system", text)),
    }
}

/// Where each input turn's content sits in the rendered `text`, found in order (templates that
/// trim a message are allowed for); the model's own turns are left to the template's tokenizing.
fn input_ranges(text: &str, turns: &[TemplateMessage]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = 0;
    for turn in turns {
        let found = [turn.content.as_str(), turn.content.trim()]
            .into_iter()
            .filter(|c| !c.is_empty())
            .find_map(|c| text[at..].find(c).map(|start| at + start..at + start + c.len()));
        let Some(range) = found else { continue };
        at = range.end;
        if turn.role != "assistant" {
            ranges.push(range);
        }
    }
    ranges
}

fn plain(turns: &[TemplateMessage]) -> Prompt {
    let mut text = String::new();
    let mut ranges = Vec::new();
    for turn in turns {
        let label = match turn.role {
            "system" => "",
            "user" => "User: ",
            _ => "Assistant: ",
        };
        text.push_str(label);
        let start = text.len();
        text.push_str(turn.content.trim());
        if turn.role != "assistant" {
            ranges.push(start..text.len());
        }
        text.push_str("\n\n");
    }
    text.push_str("Assistant:");
    Prompt { text, stop: vec!["\nUser:".into()], plain: ranges }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_types::ToolCall;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Gemma's style: system text folded into the first user turn, strict alternation.
    const ALTERNATING: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}<start_of_turn>{{ role }}\n{{ (first if loop.first else '') + message['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

    fn tool() -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Read a file".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        }
    }

    fn conversation() -> Vec<Message> {
        vec![
            Message::system("Be brief."),
            Message::user("Show a.rs"),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "read_file".into(),
                    arguments: r#"{"path":"a.rs"}"#.into(),
                }],
            },
            Message::Tool {
                call_id: "c1".into(),
                name: "read_file".into(),
                content: "fn main() {}".into(),
                is_error: false,
            },
            Message::user("Thanks"),
        ]
    }

    fn chat(template: &str) -> ChatFormat {
        ChatFormat::new(Some(template.into()), "<bos>".into(), "<eos>".into()).unwrap()
    }

    /// DeepSeek's template writes calls and results but is not given the tools: they are
    /// described in the system message, with an example in DeepSeek's own syntax.
    #[test]
    fn deepseek_is_told_the_tools_in_its_own_call_syntax() {
        let src = include_str!("../tests/templates/deepseek-ai-DeepSeek-V3.1.jinja");
        let format = chat(src);
        assert_eq!(format.tool_format(), ToolFormat::DeepSeek);
        let p = format.render(&conversation(), &[tool()]).unwrap();
        let (begin, call, sep) =
            ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>");
        let (call_end, end) = ("<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>");
        assert!(
            p.text.starts_with("<bos>Be brief.\n\n# Tools\n\nAvailable tools:\n"),
            "{}",
            p.text
        );
        let example = format!(
            "parameters. Example:\n{begin}{call}read_file{sep}{{\"path\": \"...\"}}{call_end}{end}\n"
        );
        assert!(p.text.contains(&example), "{}", p.text);
        let made = format!("{begin}{call}read_file{sep}{{\"path\": \"a.rs\"}}{call_end}{end}");
        assert!(p.text.contains(&made), "{}", p.text);
        assert!(p.text.contains("<｜tool▁output▁begin｜>fn main() {}"), "{}", p.text);
        assert!(!p.text.contains("<tool_result"), "{}", p.text);
    }

    #[test]
    fn chatml_renders_tools_calls_and_results() {
        let p = chat(CHATML).render(&conversation(), &[tool()]).unwrap();
        let expected = format!(
            "<|im_start|>system\nBe brief.\n\n{}<|im_end|>\n\
             <|im_start|>user\nShow a.rs<|im_end|>\n\
             <|im_start|>assistant\n<tool_call>{{\"name\": \"read_file\", \"arguments\": {{\"path\": \"a.rs\"}}}}</tool_call><|im_end|>\n\
             <|im_start|>user\n<tool_result name=\"read_file\">\nfn main() {{}}\n</tool_result>\n\nThanks<|im_end|>\n\
             <|im_start|>assistant\n",
            describe_tools(ToolFormat::Tiller, &[tool()]).trim()
        );
        assert_eq!(p.text, expected);
        assert!(p.stop.is_empty());
    }

    #[test]
    fn tools_description_holds_the_schema_and_the_call_form() {
        let d = describe_tools(ToolFormat::Tiller, &[tool()]);
        let schema = json_text(&tool().parameters);
        let line = format!(
            r#"{{"name": "read_file", "description": "Read a file", "parameters": {schema}}}"#
        );
        assert!(d.contains(&line), "{d}");
        assert!(schema.contains(r#""properties": {"path": {"type": "string"}}"#), "{schema}");
        let example =
            r#"<tool_call>{"name": "read_file", "arguments": {"path": "..."}}</tool_call>"#;
        assert!(d.ends_with(&format!("Example:\n{example}\n")), "{d}");
    }

    #[test]
    fn alternating_template_gets_alternating_roles() {
        let format = chat(ALTERNATING);
        let p = format.render(&conversation(), &[]).unwrap();
        assert!(
            p.text.starts_with("<bos><start_of_turn>user\nBe brief.\n\nShow a.rs<end_of_turn>\n"),
            "{}",
            p.text
        );
        assert!(p.text.ends_with("Thanks<end_of_turn>\n<start_of_turn>model\n"), "{}", p.text);
    }

    #[test]
    fn template_exceptions_are_errors() {
        let format = chat(ALTERNATING);
        let err =
            format.render(&[Message::assistant("first"), Message::user("u")], &[]).unwrap_err();
        assert!(err.to_string().contains("must alternate"), "{err}");
        let broken = ChatFormat::new(Some("{% for %}".into()), String::new(), String::new());
        assert!(matches!(broken, Err(LlamaError::Template(_))));
    }

    #[test]
    fn base_models_get_a_plain_transcript() {
        let format = ChatFormat::new(None, String::new(), String::new()).unwrap();
        assert!(!format.has_template());
        let p = format
            .render(
                &[
                    Message::system("Sys."),
                    Message::user("Hi"),
                    Message::assistant("Hello"),
                    Message::user("Bye"),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(p.text, "Sys.\n\nUser: Hi\n\nAssistant: Hello\n\nUser: Bye\n\nAssistant:");
        assert_eq!(p.stop, vec!["\nUser:".to_string()]);
    }
}

//! Turns a conversation into the prompt text a model expects: the GGUF's own
//! `tokenizer.chat_template` rendered with minijinja, or, for base models that have none, a plain
//! transcript.
//!
//! Small chat templates know nothing of tools, so tools are described in the system message and
//! the conversation is normalised before rendering: tool calls become `<tool_call>{json}</tool_call>`
//! text in the assistant's message, tool results become user messages wrapped in
//! `<tool_result name="...">`, and consecutive messages of one role are merged (templates such as
//! Gemma's insist that roles alternate).
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

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, context};
use serde::Serialize;
use tiller_types::{Message, ToolSpec};

use crate::LlamaError;

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

/// One message as templates see it.
#[derive(Debug, PartialEq, Serialize)]
struct Turn {
    role: &'static str,
    content: String,
}

impl ChatFormat {
    /// A format from a GGUF's template (if any) and the text of its BOS and EOS tokens, which
    /// templates may print. A template that does not render a simple conversation is an error.
    pub fn new(template: Option<String>, bos: String, eos: String) -> Result<Self, LlamaError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| LlamaError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<(), Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |format: String| strftime_now(&format));
        let format = ChatFormat { env, template, bos, eos };
        format.render(&[Message::system("s"), Message::user("u")], &[])?;
        Ok(format)
    }

    /// Whether the model has its own chat template.
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The prompt for `messages` with `tools` offered, ending where the assistant's reply begins.
    pub fn render(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Prompt, LlamaError> {
        let turns = normalise(messages, tools);
        let Some(template) = &self.template else {
            return Ok(plain(&turns));
        };
        let text = self
            .env
            .render_str(
                template,
                context! {
                    messages => minijinja::value::Serde(&turns),
                    add_generation_prompt => true,
                    bos_token => &self.bos,
                    eos_token => &self.eos,
                },
            )
            .map_err(|e| LlamaError::Template(format!("{e:#}")))?;
        let plain = input_ranges(&text, &turns);
        Ok(Prompt { text, stop: Vec::new(), plain })
    }
}

/// The system text that offers `tools` and says how to call them, ending with an example call
/// of the first tool (small models follow an example far better than a description).
pub fn describe_tools(tools: &[ToolSpec]) -> String {
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
         the tool's parameters. The result comes back in a <tool_result> message. Example:\n",
    );
    if let Some(tool) = tools.first() {
        out.push_str(&call_text(&tool.name, &example_arguments(&tool.parameters).to_string()));
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
    let args = serde_json::from_str::<serde_json::Value>(arguments)
        .unwrap_or_else(|_| serde_json::Value::String(arguments.to_string()));
    format!(
        "{TOOL_CALL_START}{{\"name\": {}, \"arguments\": {}}}{TOOL_CALL_END}",
        json_text(&name.into()),
        json_text(&args)
    )
}

/// JSON with a space after `:` and `,` (Python's `json.dumps` style), the form the tool grammar
/// produces, so that calls read back into the prompt look like the ones the model wrote.
pub fn json_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json_text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), json_text(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

fn normalise(messages: &[Message], tools: &[ToolSpec]) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
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
        match turns.last_mut() {
            Some(last) if last.role == role => {
                last.content.push_str("\n\n");
                last.content.push_str(&content);
            }
            _ => turns.push(Turn { role, content }),
        }
    }
    if !tools.is_empty() {
        let described = describe_tools(tools);
        match turns.first_mut() {
            Some(first) if first.role == "system" => {
                first.content.push_str("\n\n");
                first.content.push_str(&described);
            }
            _ => turns.insert(0, Turn { role: "system", content: described }),
        }
    }
    turns
}

/// Where each input turn's content sits in the rendered `text`, found in order (templates that
/// trim a message are allowed for); the model's own turns are left to the template's tokenizing.
fn input_ranges(text: &str, turns: &[Turn]) -> Vec<std::ops::Range<usize>> {
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

fn plain(turns: &[Turn]) -> Prompt {
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

/// The current UTC time formatted with the strftime directives templates use
/// (`%Y %m %d %e %b %B %a %A %H %M %S %y %j %%`).
fn strftime_now(format: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    strftime(format, secs)
}

fn strftime(format: &str, secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] =
        ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = tiller_types::time::civil_from_days(days as i64);
    let (month, day) = (i64::from(month), i64::from(day));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let jan1 = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][month as usize - 1]
        + day
        + i64::from(leap && month > 2);
    let month_name = MONTHS[month as usize - 1];
    let day_name = DAYS[(days % 7) as usize];

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('j') => out.push_str(&format!("{jan1:03}")),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('a') => out.push_str(&day_name[..3]),
            Some('A') => out.push_str(day_name),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
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

    #[test]
    fn chatml_renders_tools_calls_and_results() {
        let p = chat(CHATML).render(&conversation(), &[tool()]).unwrap();
        let expected = format!(
            "<|im_start|>system\nBe brief.\n\n{}<|im_end|>\n\
             <|im_start|>user\nShow a.rs<|im_end|>\n\
             <|im_start|>assistant\n<tool_call>{{\"name\": \"read_file\", \"arguments\": {{\"path\": \"a.rs\"}}}}</tool_call><|im_end|>\n\
             <|im_start|>user\n<tool_result name=\"read_file\">\nfn main() {{}}\n</tool_result>\n\nThanks<|im_end|>\n\
             <|im_start|>assistant\n",
            describe_tools(&[tool()]).trim()
        );
        assert_eq!(p.text, expected);
        assert!(p.stop.is_empty());
    }

    #[test]
    fn tools_description_holds_the_schema_and_the_call_form() {
        let d = describe_tools(&[tool()]);
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

    #[test]
    fn strftime_formats_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2024-02-29 13:05:09");
        assert_eq!(strftime("%d %b %Y, %A %j %%", t), "29 Feb 2024, Thursday 060 %");
        assert_eq!(strftime("%e %B %y", 0), " 1 January 70");
    }
}

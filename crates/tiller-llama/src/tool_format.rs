//! Each model family's own way of writing tool calls: which one a chat template was trained
//! on (told from markers in its source, as llama.cpp's server does), the text of calls in it,
//! the GBNF grammar that admits exactly such calls to the offered tools, and the parser that
//! reads them back.
//!
//! | format | a reply of calls | several |
//! |---|---|---|
//! | `hermes` (Qwen2.5, Qwen3, Hermes) | `<tool_call>\n{"name": N, "arguments": {…}}\n</tool_call>` | yes |
//! | `qwen3-coder` | `<tool_call>\n<function=N>\n<parameter=K>\nV\n</parameter>\n</function>\n</tool_call>` | yes |
//! | `llama3` (Llama 3.1–3.3) | `{"name": N, "parameters": {…}}` | no |
//! | `mistral` (Mistral, Nemo) | `[TOOL_CALLS][{"name": N, "arguments": {…}, "id": "abcdefghi"}]` | yes |
//! | `devstral` (Devstral, Ministral 3) | `[TOOL_CALLS]N[ARGS]{…}`, once per call | yes |
//! | `granite` (Granite 3) | `<|tool_call|>[{"name": N, "arguments": {…}}]` | yes |
//! | `deepseek` (DeepSeek V3.1) | `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>N<｜tool▁sep｜>{…}<｜tool▁call▁end｜><｜tool▁calls▁end｜>` | yes |
//! | `glm` (GLM 4.5–4.7) | `<tool_call>N\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n</tool_call>` | yes |
//! | `tiller` | `<tool_call>{"name": N, "arguments": {…}}</tool_call>`, taught in the system message | no |
//!
//! `tiller` is the format for templates that know no tools; the others are given the tools
//! through the template, but for `deepseek`, whose template writes calls and results but not
//! the tools themselves: tiller describes them in the system message, in the family's syntax.
//! In the XML-like formats a string argument is written raw and any other as JSON.

use serde_json::{Map, Value};
use tiller_types::{ToolCall, ToolSpec};

use crate::grammar::{BASE_RULES, Grammar, literal, parse_call, salvage_call};
use crate::template::{TOOL_CALL_END, TOOL_CALL_START, arguments, call_text, json_text};

/// A family's tool-call syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolFormat {
    Tiller,
    Hermes,
    Qwen3Coder,
    Llama3,
    Mistral,
    Devstral,
    Granite,
    Glm,
    DeepSeek,
}

/// A call read back from a reply: the tool's name and its arguments as JSON text (or, for a
/// call that could not be read, whatever text there was).
pub type Parsed = (String, String);

impl ToolFormat {
    /// Every format.
    pub const ALL: [ToolFormat; 9] = [
        ToolFormat::Tiller,
        ToolFormat::Hermes,
        ToolFormat::Qwen3Coder,
        ToolFormat::Llama3,
        ToolFormat::Mistral,
        ToolFormat::Devstral,
        ToolFormat::Granite,
        ToolFormat::Glm,
        ToolFormat::DeepSeek,
    ];

    /// The format a chat template writes calls in; [`ToolFormat::Tiller`] for none, or one
    /// that does not take `tools`.
    pub fn detect(template: Option<&str>) -> ToolFormat {
        let Some(src) = template else { return ToolFormat::Tiller };
        let has = |marker: &str| src.contains(marker);
        // DeepSeek's template writes calls but is not given the tools.
        if has(DS_CALLS_BEGIN) && has(DS_SEP) {
            return ToolFormat::DeepSeek;
        }
        if !has("tools") {
            return ToolFormat::Tiller;
        }
        if has("<tool_call>") && has("<function=") && has("<parameter=") {
            ToolFormat::Qwen3Coder
        } else if has("<arg_key>") && has("<arg_value>") {
            ToolFormat::Glm
        } else if has("[TOOL_CALLS]") && has(ARGS) {
            ToolFormat::Devstral
        } else if has("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if has("<|tool_call|>") {
            ToolFormat::Granite
        } else if has("<tool_call>") {
            ToolFormat::Hermes
        } else if has("<|start_header_id|>") && has("\"parameters\": ") {
            ToolFormat::Llama3
        } else {
            ToolFormat::Tiller
        }
    }

    /// The name `tiller models` shows.
    pub fn name(self) -> &'static str {
        match self {
            ToolFormat::Tiller => "tiller",
            ToolFormat::Hermes => "hermes",
            ToolFormat::Qwen3Coder => "qwen3-coder",
            ToolFormat::Llama3 => "llama3",
            ToolFormat::Mistral => "mistral",
            ToolFormat::Devstral => "devstral",
            ToolFormat::Granite => "granite",
            ToolFormat::Glm => "glm",
            ToolFormat::DeepSeek => "deepseek",
        }
    }

    /// Whether the template writes the conversation's calls and results in the family's own
    /// shape (all but [`ToolFormat::Tiller`]).
    pub fn native(self) -> bool {
        self != ToolFormat::Tiller
    }

    /// Whether the template is given the tools; where it is not, tiller describes them in the
    /// system message.
    pub fn template_takes_tools(self) -> bool {
        !matches!(self, ToolFormat::Tiller | ToolFormat::DeepSeek)
    }

    /// Whether one reply may hold several calls.
    pub fn multi_call(self) -> bool {
        !matches!(self, ToolFormat::Tiller | ToolFormat::Llama3)
    }

    /// What opens the calls in a reply.
    pub fn start(self) -> &'static str {
        match self {
            ToolFormat::Llama3 => "{\"name\"",
            ToolFormat::Mistral | ToolFormat::Devstral => "[TOOL_CALLS]",
            ToolFormat::Granite => "<|tool_call|>",
            ToolFormat::DeepSeek => DS_CALLS_BEGIN,
            _ => TOOL_CALL_START,
        }
    }

    /// The markers that models of this family have as special tokens, to be decoded as text.
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            ToolFormat::Mistral => &["[TOOL_CALLS]"],
            ToolFormat::Devstral => &["[TOOL_CALLS]", ARGS, CALL_ID],
            ToolFormat::Granite => &["<|tool_call|>"],
            ToolFormat::Glm => &[
                "<tool_call>",
                "</tool_call>",
                "<arg_key>",
                "</arg_key>",
                "<arg_value>",
                "</arg_value>",
            ],
            ToolFormat::Llama3 => &[],
            ToolFormat::DeepSeek => {
                &[DS_CALLS_BEGIN, DS_CALL_BEGIN, DS_SEP, DS_CALL_END, DS_CALLS_END]
            }
            _ => &[TOOL_CALL_START, TOOL_CALL_END],
        }
    }

    /// The text of `calls` as a model of this family writes them.
    pub fn calls_text(self, calls: &[ToolCall]) -> String {
        let json = |c: &ToolCall, key: &str| {
            format!(
                "{{\"name\": {}, \"{key}\": {}}}",
                json_text(&c.name.as_str().into()),
                json_text(&arguments(&c.arguments))
            )
        };
        let fields = |c: &ToolCall| -> Vec<(String, Value)> {
            match arguments(&c.arguments) {
                Value::Object(map) => map.into_iter().collect(),
                _ => Vec::new(),
            }
        };
        let each = |f: &dyn Fn(&ToolCall) -> String, sep: &str| {
            calls.iter().map(f).collect::<Vec<_>>().join(sep)
        };
        match self {
            ToolFormat::Tiller => each(&|c| call_text(&c.name, &c.arguments), "\n"),
            ToolFormat::Hermes => {
                each(&|c| format!("<tool_call>\n{}\n</tool_call>", json(c, "arguments")), "\n")
            }
            ToolFormat::Llama3 => each(&|c| json(c, "parameters"), "\n"),
            ToolFormat::Mistral => format!(
                "[TOOL_CALLS][{}]",
                each(
                    &|c| {
                        let call = json(c, "arguments");
                        format!("{}, \"id\": \"{}\"}}", &call[..call.len() - 1], mistral_id(&c.id))
                    },
                    ", "
                )
            ),
            ToolFormat::Devstral => each(
                &|c| format!("[TOOL_CALLS]{}{ARGS}{}", c.name, json_text(&arguments(&c.arguments))),
                "",
            ),
            ToolFormat::Granite => {
                format!("<|tool_call|>[{}]", each(&|c| json(c, "arguments"), ", "))
            }
            ToolFormat::DeepSeek => {
                let call = |c: &ToolCall| {
                    let args = json_text(&arguments(&c.arguments));
                    format!("{DS_CALL_BEGIN}{}{DS_SEP}{args}{DS_CALL_END}", c.name)
                };
                format!("{DS_CALLS_BEGIN}{}{DS_CALLS_END}", each(&call, ""))
            }
            ToolFormat::Qwen3Coder => each(
                &|c| {
                    let params: String = fields(c)
                        .iter()
                        .map(|(k, v)| format!("<parameter={k}>\n{}\n</parameter>\n", raw(v)))
                        .collect();
                    format!("<tool_call>\n<function={}>\n{params}</function>\n</tool_call>", c.name)
                },
                "\n",
            ),
            ToolFormat::Glm => each(
                &|c| {
                    let params: String = fields(c)
                        .iter()
                        .map(|(k, v)| {
                            format!("\n<arg_key>{k}</arg_key>\n<arg_value>{}</arg_value>", raw(v))
                        })
                        .collect();
                    format!("<tool_call>{}{params}\n</tool_call>", c.name)
                },
                "\n",
            ),
        }
    }

    /// The grammar (start rule `root`) for a reply of calls to `tools`, from [`Self::start`] on.
    pub fn grammar(self, tools: &[ToolSpec]) -> String {
        let mut g = Grammar::default();
        let calls: Vec<String> = tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                let name = &tool.name;
                let rule = format!("t{i}");
                match self {
                    ToolFormat::Qwen3Coder | ToolFormat::Glm => {
                        let args = xml_args(&mut g, self, &tool.parameters, &rule);
                        let head = match self {
                            ToolFormat::Glm => name.clone(),
                            _ => format!("<function={name}>\n"),
                        };
                        g.add(&rule, format!("{} {args}", literal(&head)))
                    }
                    ToolFormat::DeepSeek | ToolFormat::Devstral => {
                        let sep = if self == ToolFormat::DeepSeek { DS_SEP } else { ARGS };
                        let args = g.rule_for(&tool.parameters, &format!("{rule}-args"));
                        g.add(&rule, format!("{} {args}", literal(&format!("{name}{sep}"))))
                    }
                    _ => {
                        let args = g.rule_for(&tool.parameters, &format!("{rule}-args"));
                        let key =
                            if self == ToolFormat::Llama3 { "parameters" } else { "arguments" };
                        let head = format!(
                            "{{\"name\": {}, \"{key}\": ",
                            json_text(&name.as_str().into())
                        );
                        let tail = if self == ToolFormat::Mistral {
                            r#"", \"id\": \"" [a-zA-Z0-9]{9} "\"}""#
                        } else {
                            r#""}""#
                        };
                        g.add(&rule, format!("{} {args} {tail}", literal(&head)))
                    }
                }
            })
            .collect();
        let any = format!("( {} )", calls.join(" | "));
        let mut repeated = |open: &str, close: &str| {
            g.add("call", format!("{} {any} {}", literal(open), literal(close)));
            r#"call ( "\n" call )*"#.to_string()
        };
        let root = match self {
            ToolFormat::Tiller => {
                format!("{} {any} {}", literal(TOOL_CALL_START), literal(TOOL_CALL_END))
            }
            ToolFormat::Hermes => repeated("<tool_call>\n", "\n</tool_call>"),
            ToolFormat::Qwen3Coder => repeated("<tool_call>\n", "</function>\n</tool_call>"),
            ToolFormat::Glm => repeated("<tool_call>", "\n</tool_call>"),
            ToolFormat::Llama3 => any,
            ToolFormat::Mistral => format!(r#""[TOOL_CALLS][" {any} ( ", " {any} )* "]""#),
            ToolFormat::Devstral => format!(r#"( "[TOOL_CALLS]" {any} )+"#),
            ToolFormat::Granite => format!(r#""<|tool_call|>[" {any} ( ", " {any} )* "]""#),
            ToolFormat::DeepSeek => {
                g.add("call", format!("{} {any} {}", literal(DS_CALL_BEGIN), literal(DS_CALL_END)));
                format!("{} call+ {}", literal(DS_CALLS_BEGIN), literal(DS_CALLS_END))
            }
        };
        let mut out = format!("root ::= {root}\n");
        for (name, body) in &g.rules {
            out.push_str(&format!("{name} ::= {body}\n"));
        }
        out.push_str(BASE_RULES);
        out
    }

    /// Reads the calls in `text` (from [`Self::start`] on). A call that cannot be read comes
    /// back as a name (or nothing) and its raw text, which the agent reports as broken.
    pub fn parse(self, text: &str, tools: &[ToolSpec]) -> Vec<Parsed> {
        let whole = |calls: Option<Vec<Parsed>>| calls.unwrap_or_else(|| vec![salvage_call(text)]);
        // Formats with a block per call: a broken block (the last, cut short) spoils no other.
        let each = |open: &str, close: &str, read: &dyn Fn(&str) -> Option<Parsed>| {
            let calls: Vec<Parsed> = blocks(text, open, close)
                .map(|b| read(b).unwrap_or_else(|| salvage_call(b)))
                .collect();
            if calls.is_empty() { vec![salvage_call(text)] } else { calls }
        };
        match self {
            ToolFormat::Tiller => whole(parse_call(text).map(|c| vec![c])),
            ToolFormat::Llama3 => {
                whole(parse_call(text.trim().trim_start_matches("<|python_tag|>")).map(|c| vec![c]))
            }
            ToolFormat::Mistral => whole(json_list(text, "[TOOL_CALLS]")),
            ToolFormat::Granite => whole(json_list(text, "<|tool_call|>")),
            ToolFormat::Hermes => each(TOOL_CALL_START, TOOL_CALL_END, &parse_call),
            ToolFormat::Qwen3Coder => each("<function=", "</function>", &|b| {
                let (name, body) = b.split_once(">\n")?;
                let pairs = blocks(body, "<parameter=", "</parameter>").map(|p| {
                    p.split_once(">\n").map(|(k, v)| (k, v.strip_suffix('\n').unwrap_or(v)))
                });
                xml_call(name, pairs, tools)
            }),
            ToolFormat::DeepSeek => each(DS_CALL_BEGIN, DS_CALL_END, &|b| named_call(b, DS_SEP)),
            ToolFormat::Devstral => each("[TOOL_CALLS]", "[TOOL_CALLS]", &|b| named_call(b, ARGS)),
            ToolFormat::Glm => each(TOOL_CALL_START, TOOL_CALL_END, &|b| {
                let (name, body) = b.split_once('\n').unwrap_or((b, ""));
                let keys = blocks(body, "<arg_key>", "</arg_key>");
                let values = blocks(body, "<arg_value>", "</arg_value>");
                xml_call(name, keys.zip(values).map(Some), tools)
            }),
        }
    }
}

// DeepSeek's markers (special tokens of its vocabulary).
const DS_CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
const DS_CALL_BEGIN: &str = "<｜tool▁call▁begin｜>";
const DS_SEP: &str = "<｜tool▁sep｜>";
const DS_CALL_END: &str = "<｜tool▁call▁end｜>";
const DS_CALLS_END: &str = "<｜tool▁calls▁end｜>";

// Devstral's markers (with `[TOOL_CALLS]`, special tokens of its vocabulary).
const ARGS: &str = "[ARGS]";
const CALL_ID: &str = "[CALL_ID]";

/// A call id as Mistral's templates require it: nine letters and digits (a hash of the id).
pub fn mistral_id(id: &str) -> String {
    const DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_string();
    }
    // FNV-1a, stable across runs and builds.
    let mut h = id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (0..9)
        .map(|_| {
            let c = DIGITS[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

/// The texts between each `open` and the next `close` in `text`, in order; an unclosed last one
/// runs to the end.
fn blocks<'a>(text: &'a str, open: &'a str, close: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.split(open).skip(1).map(move |b| b.split(close).next().unwrap_or(b))
}

/// Calls written as a JSON list after `marker`.
fn json_list(text: &str, marker: &str) -> Option<Vec<Parsed>> {
    let list: Vec<Value> = serde_json::from_str(text.trim().strip_prefix(marker)?.trim()).ok()?;
    // An empty list is no call: the text is salvaged as a broken one, never dropped.
    if list.is_empty() {
        return None;
    }
    list.iter().map(|call| parse_call(&call.to_string())).collect()
}

/// A call written as its name, `sep` and its arguments as JSON (DeepSeek's, Devstral's).
/// Arguments that are not a JSON object are kept as written, which the agent reports as broken.
fn named_call(block: &str, sep: &str) -> Option<Parsed> {
    let (head, args) = block.split_once(sep)?;
    // Mistral Small 3.2 writes the call's id between its name and its arguments.
    let name = head.split(CALL_ID).next().unwrap_or(head).trim();
    let args = args.trim();
    let object = serde_json::from_str::<Value>(args).ok().filter(Value::is_object);
    Some((name.to_string(), object.map_or_else(|| args.to_string(), |v| json_text(&v))))
}

/// A call of the XML-like formats: values of string parameters as written, others as JSON.
fn xml_call<'a>(
    name: &str,
    pairs: impl Iterator<Item = Option<(&'a str, &'a str)>>,
    tools: &[ToolSpec],
) -> Option<Parsed> {
    let name = name.trim();
    let schema = tools.iter().find(|t| t.name == name).map(|t| &t.parameters);
    let mut args = Map::new();
    for pair in pairs {
        let (key, value) = pair?;
        let value = match schema.and_then(|s| property_type(s, key)) {
            Some("string") | None => Value::String(value.to_string()),
            _ => serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string())),
        };
        args.insert(key.trim().to_string(), value);
    }
    Some((name.to_string(), json_text(&Value::Object(args))))
}

/// The `type` a schema gives property `key`, looking into `anyOf`/`oneOf` options too.
fn property_type<'a>(schema: &'a Value, key: &str) -> Option<&'a str> {
    let own = schema.pointer(&format!("/properties/{key}/type")).and_then(Value::as_str);
    let options = ["anyOf", "oneOf"].into_iter().filter_map(|k| schema.get(k)?.as_array());
    own.or_else(|| options.flatten().find_map(|o| property_type(o, key)))
}

/// A value as the XML-like formats write it: strings raw, the rest as JSON.
fn raw(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }
}

/// The parameters of one call in an XML-like format: required ones in the order `required`
/// gives, then optional ones in map order. String values are raw text up to the closing tag.
fn xml_args(g: &mut Grammar, format: ToolFormat, schema: &Value, rule: &str) -> String {
    let (open, mid, close, text) = match format {
        ToolFormat::Glm => ("\n<arg_key>", "</arg_key>\n<arg_value>", "</arg_value>", "glm-text"),
        _ => ("<parameter=", ">\n", "\n</parameter>\n", "xml-text"),
    };
    g.add("glm-text", r#"( [^<] | "<" [^/] | "</" [^a] )*"#.into());
    g.add("xml-text", r#"( [^<] | "<" [^/] | "</" [^p] )*"#.into());
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = schema.get(key) {
            let alts: Vec<String> = options
                .iter()
                .enumerate()
                .map(|(j, o)| xml_args(g, format, o, &format!("{rule}-{j}")))
                .collect();
            return format!("( {} )", alts.join(" | "));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |r| r.iter().filter_map(Value::as_str).collect());
    let mut fields = Vec::new();
    let mut optional = Vec::new();
    let keys = required.iter().copied().chain(
        props.into_iter().flatten().map(|(k, _)| k.as_str()).filter(|k| !required.contains(k)),
    );
    for (i, key) in keys.enumerate() {
        let sub = props.and_then(|p| p.get(key)).unwrap_or(&Value::Null);
        let strings = |k| {
            sub.get(k).and_then(Value::as_array).filter(|v| v.iter().all(Value::is_string)).cloned()
        };
        let fixed = strings("enum")
            .or_else(|| sub.get("const").filter(|c| c.is_string()).map(|c| vec![c.clone()]));
        let value = match (fixed, sub.get("type").and_then(Value::as_str)) {
            // Strings are written raw: a list of them is a choice of raw texts.
            (Some(options), _) => {
                let alts: Vec<String> =
                    options.iter().filter_map(Value::as_str).map(literal).collect();
                format!("( {} )", alts.join(" | "))
            }
            (None, Some("string") | None) => text.to_string(),
            _ => g.rule_for(sub, &format!("{rule}-{i}")),
        };
        let field = format!("{} {value} {}", literal(&format!("{open}{key}{mid}")), literal(close));
        if required.contains(&key) {
            fields.push(field);
        } else {
            optional.push(format!("( {field} )?"));
        }
    }
    fields.extend(optional);
    if fields.is_empty() {
        return "\"\"".into();
    }
    fields.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "read_file".into(),
            description: "Read a file".into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["path"]}),
        }]
    }

    fn calls() -> Vec<ToolCall> {
        ["a.rs", "src/</b>.rs"]
            .iter()
            .enumerate()
            .map(|(i, path)| ToolCall {
                id: format!("call_{i}"),
                name: "read_file".into(),
                arguments: json!({"path": path, "limit": 3}).to_string(),
            })
            .collect()
    }

    #[test]
    fn calls_written_in_each_format_parse_back() {
        for format in ToolFormat::ALL {
            let n = if format.multi_call() { 2 } else { 1 };
            let text = format.calls_text(&calls()[..n]);
            assert!(text.starts_with(format.start()), "{format:?}: {text}");
            let parsed = format.parse(&text, &tools());
            let expected: Vec<Parsed> = calls()[..n]
                .iter()
                .map(|c| (c.name.clone(), json_text(&serde_json::from_str(&c.arguments).unwrap())))
                .collect();
            assert_eq!(parsed, expected, "{format:?}: {text}");
        }
    }

    #[test]
    fn broken_calls_are_salvaged_not_dropped() {
        for format in ToolFormat::ALL {
            let text = format!("{}{{\"name\": \"read_file\", \"argu", format.start());
            let parsed = format.parse(&text, &tools());
            assert_eq!(parsed.len(), 1, "{format:?}");
            assert!(
                serde_json::from_str::<Value>(&parsed[0].1).is_err() || parsed[0].1 == "{}",
                "{format:?}: {parsed:?}"
            );
            // A call section that names no call (the fuzzer's `<|tool_call|>[]`) is one too.
            let empty = format!("{}[]", format.start());
            assert_eq!(format.parse(&empty, &tools()).len(), 1, "{format:?}");
        }
    }

    #[test]
    fn devstral_calls_are_read_one_by_one() {
        let f = ToolFormat::Devstral;
        let one = r#"[TOOL_CALLS]read_file[ARGS]{"path": "a.rs"}"#;
        assert_eq!(
            f.parse(one, &tools()),
            vec![("read_file".into(), r#"{"path": "a.rs"}"#.into())]
        );
        // Mistral Small 3.2 writes a call id between the name and the arguments.
        let two = r#"[TOOL_CALLS]read_file[ARGS]{"path": "a.rs"}
[TOOL_CALLS]read_file[CALL_ID]abcDEF123[ARGS]{"limit": 2,"path":"b.rs"}"#;
        let parsed = f.parse(two, &tools());
        assert_eq!(parsed[1], ("read_file".into(), r#"{"limit": 2, "path": "b.rs"}"#.into()));
        assert_eq!(parsed.len(), 2);
        // A call cut short keeps its name and the text of its arguments, and spoils no other.
        let cut = format!("{one}[TOOL_CALLS]read_file[ARGS]{{\"path\": \"b");
        let parsed = f.parse(&cut, &tools());
        assert_eq!(parsed[0].1, r#"{"path": "a.rs"}"#);
        assert_eq!(parsed[1], ("read_file".into(), r#"{"path": "b"#.into()));
    }

    #[test]
    fn templates_tell_their_format() {
        let cases = [
            ("{{ tools }}<tool_call>\n<function=x>\n<parameter=y>", ToolFormat::Qwen3Coder),
            ("{{ tools }}<tool_call>{{ name }}<arg_key>k</arg_key><arg_value>", ToolFormat::Glm),
            ("{{ tools }}[TOOL_CALLS]", ToolFormat::Mistral),
            ("{{ tools }}[TOOL_CALLS]{{ name }}[ARGS]", ToolFormat::Devstral),
            ("{{ tools }}<|tool_call|>", ToolFormat::Granite),
            ("{{ tools }}<tool_call>", ToolFormat::Hermes),
            ("{{ tools }}<|start_header_id|>\"parameters\": ", ToolFormat::Llama3),
            ("<|im_start|>{{ messages }}", ToolFormat::Tiller),
            ("<tool_call> but no list of them", ToolFormat::Tiller),
        ];
        for (template, format) in cases {
            assert_eq!(ToolFormat::detect(Some(template)), format, "{template}");
        }
        assert_eq!(ToolFormat::detect(None), ToolFormat::Tiller);
    }

    #[test]
    fn mistral_ids_are_nine_letters_and_digits() {
        let id = mistral_id("call_12");
        assert_eq!(id.len(), 9);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, mistral_id("call_120"));
        assert_eq!(mistral_id("abcDEF123"), "abcDEF123");
    }
}

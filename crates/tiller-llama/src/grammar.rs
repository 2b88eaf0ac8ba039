//! Tool calls by constrained decoding: GBNF rules (llama.cpp's grammar format) for arguments
//! shaped by a tool's JSON schema, from which each [`ToolFormat`](crate::tool_format::ToolFormat)
//! builds the grammar of its calls; the parser for a call written as JSON
//! (`{"name": "<tool>", "arguments": {...}}`); and a validator for the schema subset the
//! grammar enforces.
//!
//! Schemas map to rules as follows: objects list their required properties first, in the order
//! `required` gives, then the others, optional, in map order; `string` (with `maxLength`, and a
//! `pattern` in the subset [`Pattern`] reads), `integer`, `number`, `boolean`, `null`, arrays
//! (with or without `items`), `enum`, `const`, `anyOf`/`oneOf` and type lists are followed;
//! anything else becomes any JSON value. Whitespace is fixed (one space after `:` and `,`) and
//! numbers have bounded digits, so that a small model cannot wander off into endless spaces.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::template::{TOOL_CALL_END, TOOL_CALL_START, json_text};

/// Rules shared by every grammar.
pub(crate) const BASE_RULES: &str = r#"value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ( string ": " value ( ", " string ": " value )* )? "}"
array ::= "[" ( value ( ", " value )* )? "]"
string ::= "\"" char* "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
integer ::= "0" | "-"? [1-9] [0-9]{0,15}
number ::= "-"? ( [0-9] | [1-9] [0-9]{1,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
boolean ::= "true" | "false"
"#;

/// Parses the text of a call: `{"name": ..., "arguments": {...}}` (or `"parameters"`, as Llama
/// writes it) with or without the markers around it. Returns the tool name and the arguments as
/// JSON text.
pub fn parse_call(text: &str) -> Option<(String, String)> {
    let body = text.trim();
    let body = body.strip_prefix(TOOL_CALL_START).unwrap_or(body);
    let body = body.trim().strip_suffix(TOOL_CALL_END).unwrap_or(body).trim();
    let Value::Object(call) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    let name = call.get("name")?.as_str()?.to_string();
    let arguments = match call.get("arguments").or_else(|| call.get("parameters")) {
        None => Value::Object(Map::new()),
        Some(Value::String(raw)) => serde_json::from_str(raw).ok()?,
        Some(value) => value.clone(),
    };
    Some((name, json_text(&arguments)))
}

/// What can be read of a call that [`parse_call`] refuses (cut off by the token limit, or
/// malformed): the tool's name where it can be found (else empty) and the rest as raw arguments,
/// which the agent reports to the model as not valid JSON. The markup itself is never returned.
pub fn salvage_call(text: &str) -> (String, String) {
    let body = text.trim();
    let body = body.strip_prefix(TOOL_CALL_START).unwrap_or(body);
    let body = body.trim().strip_suffix(TOOL_CALL_END).unwrap_or(body).trim();
    let name = body
        .split_once("\"name\"")
        .and_then(|(_, rest)| rest.trim_start().strip_prefix(':'))
        .and_then(|rest| rest.trim_start().strip_prefix('"'))
        .and_then(|rest| rest.split_once('"'))
        .map_or_else(String::new, |(name, _)| name.to_string());
    let arguments = match body.split_once("\"arguments\"") {
        Some((_, rest)) => rest.trim_start().trim_start_matches(':').trim().to_string(),
        None => body.to_string(),
    };
    (name, arguments)
}

/// Checks `value` against the subset of JSON Schema that [`tool_call_grammar`] enforces (`type`,
/// `enum`, `const`, `properties`, `required`, `items`, `anyOf`, `oneOf`, `maxLength`, and a
/// `pattern` in the subset [`Pattern`] reads). Returns what is wrong.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    let Value::Object(schema) = schema else {
        return Ok(());
    };
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        return Err(format!("{value} is not one of {}", Value::Array(options.clone())));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        return Err(format!("{value} is not {expected}"));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = schema.get(key)
            && !options.iter().any(|s| validate(s, value).is_ok())
        {
            return Err(format!("{value} matches none of {key}"));
        }
    }
    match schema.get("type") {
        Some(Value::String(ty)) => check_type(ty, value)?,
        Some(Value::Array(types))
            if !types.iter().any(|t| t.as_str().is_some_and(|t| check_type(t, value).is_ok())) =>
        {
            return Err(format!("{value} is none of the types {}", Value::Array(types.clone())));
        }
        _ => {}
    }
    if let Value::Object(fields) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(key) {
                    return Err(format!("missing required property '{key}'"));
                }
            }
        }
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (key, field) in fields {
                if let Some(sub) = props.get(key) {
                    validate(sub, field).map_err(|e| format!("{key}: {e}"))?;
                }
            }
        }
    }
    if let Value::String(text) = value {
        let max = schema.get("maxLength").and_then(Value::as_u64);
        if max.is_some_and(|max| text.chars().count() as u64 > max) {
            return Err(format!("longer than {} characters", max.unwrap_or_default()));
        }
        let pattern = schema.get("pattern").and_then(Value::as_str);
        if let Some(p) =
            pattern.filter(|p| Pattern::read(p, None).is_some_and(|r| !r.matches(text)))
        {
            return Err(format!("does not match {p}"));
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(sub, item).map_err(|e| format!("[{i}]: {e}"))?;
        }
    }
    Ok(())
}

/// A `pattern` in the subset the grammar follows: anchored (`^…$`), a sequence of character
/// classes (`[A-Z]`, or `[^<>]` without ranges) and single characters (`\\.` for a dot), each
/// once or with `?`, `*` or `+`. The runs (`*`, `+`) share the string's `maxLength`. A
/// negated class admits no control characters: an answer held to one is a line.
struct Pattern<'a> {
    steps: Vec<Step<'a>>,
}

/// One class of a [`Pattern`] and how many characters it takes (`max`: `None` for no limit).
#[derive(Clone, Copy)]
struct Step<'a> {
    class: &'a str,
    negated: bool,
    min: u64,
    max: Option<u64>,
}

impl<'a> Pattern<'a> {
    fn read(pattern: &'a str, max: Option<u64>) -> Option<Self> {
        let mut rest = pattern.strip_prefix('^')?.strip_suffix('$')?;
        let mut steps = Vec::new();
        while let Some(c) = rest.chars().next() {
            let (class, negated, after) = if c == '[' {
                let (class, after) = rest[1..].split_once(']')?;
                match class.strip_prefix('^') {
                    Some(excluded) if !excluded.contains(['\\', '-', '^']) => {
                        (excluded, true, after)
                    }
                    Some(_) => return None,
                    None => (class, false, after),
                }
            } else if let Some(after) = rest.strip_prefix('\\') {
                let c = after.chars().next().filter(char::is_ascii_punctuation)?;
                let (class, after) = after.split_at(c.len_utf8());
                (class, false, after)
            } else if "^$.()|{}*+?]".contains(c) {
                return None;
            } else {
                let (class, after) = rest.split_at(c.len_utf8());
                (class, false, after)
            };
            if class.is_empty() || class.contains(['"', '\\', '[', ']']) || class.starts_with('^') {
                return None;
            }
            // A run's limit (`None` here) is set below.
            let (min, most, after) = match after.chars().next() {
                Some('?') => (0, Some(1), &after[1..]),
                Some('*') => (0, None, &after[1..]),
                Some('+') => (1, None, &after[1..]),
                _ => (1, Some(1), after),
            };
            steps.push(Step { class, negated, min, max: most });
            rest = after;
        }
        // The string's length is shared out among the runs, so that together they keep to it.
        if let Some(max) = max {
            let runs = steps.iter().filter(|s| s.max.is_none()).count().max(1) as u64;
            let share = max.saturating_sub((steps.len() as u64).saturating_sub(runs)) / runs;
            for step in steps.iter_mut().filter(|s| s.max.is_none()) {
                step.max = Some(share.max(step.min));
            }
        }
        Some(Pattern { steps })
    }

    /// Whether the whole of `text` matches.
    fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        matches_from(&self.steps, &chars)
    }
}

fn matches_from(steps: &[Step], text: &[char]) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return text.is_empty();
    };
    for n in 0..=text.len() {
        if n as u64 >= step.min && matches_from(rest, &text[n..]) {
            return true;
        }
        let admits = |c: char| {
            if step.negated {
                !c.is_control() && !in_class(step.class, c)
            } else {
                in_class(step.class, c)
            }
        };
        if step.max.is_some_and(|m| n as u64 >= m) || n == text.len() || !admits(text[n]) {
            return false;
        }
    }
    false
}

/// Whether a class's text (`A-Z_`) holds `c`.
fn in_class(class: &str, c: char) -> bool {
    let chars: Vec<char> = class.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            if (chars[i]..=chars[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else if chars[i] == c {
            return true;
        } else {
            i += 1;
        }
    }
    false
}

fn check_type(ty: &str, value: &Value) -> Result<(), String> {
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("{value} is not of type {ty}")) }
}

/// Rules generated for schemas, by name.
#[derive(Default)]
pub(crate) struct Grammar {
    pub(crate) rules: BTreeMap<String, String>,
}

impl Grammar {
    /// Adds a rule and returns its name.
    pub(crate) fn add(&mut self, name: &str, body: String) -> String {
        self.rules.insert(name.to_string(), body);
        name.to_string()
    }

    /// A rule expression for values matching `schema`; `name` prefixes any rules it needs.
    pub(crate) fn rule_for(&mut self, schema: &Value, name: &str) -> String {
        let Value::Object(s) = schema else {
            return "value".into();
        };
        if let Some(Value::Array(options)) = s.get("enum") {
            let alts: Vec<String> = options.iter().map(|v| literal(&json_text(v))).collect();
            return if alts.is_empty() {
                "value".into()
            } else {
                format!("( {} )", alts.join(" | "))
            };
        }
        if let Some(v) = s.get("const") {
            return literal(&json_text(v));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = s.get(key) {
                let alts: Vec<String> = options
                    .iter()
                    .enumerate()
                    .map(|(i, o)| self.rule_for(o, &format!("{name}-{i}")))
                    .collect();
                return format!("( {} )", alts.join(" | "));
            }
        }
        match s.get("type") {
            Some(Value::String(ty)) => self.rule_for_type(ty, s, name),
            Some(Value::Array(types)) => {
                let alts: Vec<String> = types
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|ty| self.rule_for_type(ty, s, &format!("{name}-{ty}")))
                    .collect();
                format!("( {} )", alts.join(" | "))
            }
            _ => "value".into(),
        }
    }

    fn rule_for_type(&mut self, ty: &str, s: &Map<String, Value>, name: &str) -> String {
        match ty {
            "string" => self.string(s, name),
            "integer" | "number" | "boolean" => ty.into(),
            "null" => literal("null"),
            "array" => {
                let item = match s.get("items") {
                    Some(items) => self.rule_for(items, &format!("{name}-item")),
                    None => "value".into(),
                };
                let body = format!("\"[\" ( {item} ( \", \" {item} )* )? \"]\"");
                self.add(name, body)
            }
            "object" => match s.get("properties") {
                Some(Value::Object(props)) => self.object(props, s.get("required"), name),
                _ => "object".into(),
            },
            _ => "value".into(),
        }
    }

    /// A string held to the schema's `maxLength` and to a `pattern` in the subset [`Pattern`]
    /// reads; other patterns are not followed.
    fn string(&mut self, s: &Map<String, Value>, name: &str) -> String {
        let max = s.get("maxLength").and_then(Value::as_u64);
        let pattern = s.get("pattern").and_then(Value::as_str);
        let steps = match pattern.and_then(|p| Pattern::read(p, max)) {
            Some(pattern) => pattern.steps,
            None if max.is_some() => vec![Step { class: "", negated: true, min: 0, max }],
            None => return "string".into(),
        };
        let mut parts = Vec::new();
        for (i, Step { class, negated, min, max }) in steps.into_iter().enumerate() {
            let char = if !negated {
                format!("[{class}]")
            } else if class.is_empty() {
                "char".into()
            } else {
                let chars: String = class.chars().flat_map(char::escape_default).collect();
                let body = format!(r#"[^"\\\x7F\x00-\x1F{chars}] | "\\" ["\\/]"#);
                self.add(&format!("{name}-char{i}"), body)
            };
            let repeat = match (min, max) {
                (1, Some(1)) => String::new(),
                (0, Some(1)) => "?".into(),
                (min, Some(most)) => format!("{{{min},{most}}}"),
                (0, None) => "*".into(),
                (_, None) => "+".into(),
            };
            parts.push(format!("{char}{repeat}"));
        }
        self.add(name, format!(r#""\"" {} "\"""#, parts.join(" ")))
    }

    /// An object with `props`: required ones always, in map order, then optional ones.
    fn object(
        &mut self,
        props: &Map<String, Value>,
        required: Option<&Value>,
        name: &str,
    ) -> String {
        let position = |key: &str| {
            required
                .and_then(Value::as_array)
                .and_then(|r| r.iter().position(|k| k.as_str() == Some(key)))
        };
        let mut fields = Vec::new();
        for (i, (key, sub)) in props.iter().enumerate() {
            let value = self.rule_for(sub, &format!("{name}-{i}"));
            let kv =
                format!("{} {value}", literal(&format!("{}: ", json_text(&key.as_str().into()))));
            fields.push((position(key), kv));
        }
        let (mut req, opt): (Vec<_>, Vec<_>) = fields.into_iter().partition(|(r, _)| r.is_some());
        // Required fields come in the order `required` lists them: a tool puts the path before
        // the text that goes into it, whatever the map's order.
        req.sort_by_key(|(r, _)| *r);
        let req: Vec<String> = req.into_iter().map(|(_, kv)| kv).collect();
        let opt: Vec<String> = opt.into_iter().map(|(_, kv)| kv).collect();

        let mut body = req.join(" \", \" ");
        if req.is_empty() {
            // No field is certain to come first: any optional one may, followed by later ones.
            let alts: Vec<String> = (0..opt.len())
                .map(|i| {
                    let rest: String =
                        opt[i + 1..].iter().map(|kv| format!(" ( \", \" {kv} )?")).collect();
                    format!("{}{rest}", opt[i])
                })
                .collect();
            if !alts.is_empty() {
                body = format!("( {} )?", alts.join(" | "));
            }
        } else {
            for kv in &opt {
                body.push_str(&format!(" ( \", \" {kv} )?"));
            }
        }
        self.add(name, format!("\"{{\" {body} \"}}\""))
    }
}

/// `text` as a GBNF string literal.
pub(crate) fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tiller_types::ToolSpec;

    fn tool(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec { name: name.into(), description: String::new(), parameters }
    }

    #[test]
    fn grammar_follows_the_schema() {
        let g = crate::tool_format::ToolFormat::Tiller.grammar(&[
            tool(
                "read_file",
                json!({"type": "object", "properties": {
                    "path": {"type": "string"},
                    "limit": {"type": "integer"},
                    "mode": {"enum": ["text", "hex"]},
                    "tags": {"type": "array", "items": {"type": "boolean"}}},
                    "required": ["path"]}),
            ),
            tool("noop", json!({"type": "object", "properties": {}})),
        ]);
        let root = g.lines().next().unwrap();
        assert_eq!(root, r#"root ::= "<tool_call>" ( t0 | t1 ) "</tool_call>""#);
        assert!(
            g.contains(r#"t0 ::= "{\"name\": \"read_file\", \"arguments\": " t0-args "}""#),
            "{g}"
        );
        // `path` is required so it leads; the optional ones follow, each with its comma.
        let args = g.lines().find(|l| l.starts_with("t0-args ::=")).unwrap();
        assert!(
            args.contains(r#""{" "\"path\": " string ( ", " "\"limit\": " integer )?"#),
            "{args}"
        );
        assert!(args.contains(r#"( ", " "\"mode\": " ( "\"text\"" | "\"hex\"" ) )?"#), "{args}");
        assert!(g.contains(r#"t0-args-3 ::= "[" ( boolean ( ", " boolean )* )? "]""#), "{g}");
        assert!(g.contains(r#"t1-args ::= "{"  "}""#), "{g}");
    }

    #[test]
    fn required_fields_come_in_the_order_required_lists_them() {
        let mut g = Grammar::default();
        let props = json!({"new": {"type": "string"}, "old": {"type": "string"},
                           "path": {"type": "string"}, "message": {"type": "string"}});
        let Value::Object(props) = props else { unreachable!() };
        g.object(&props, Some(&json!(["path", "old", "new"])), "o");
        assert_eq!(
            g.rules["o"],
            r#""{" "\"path\": " string ", " "\"old\": " string ", " "\"new\": " string ( ", " "\"message\": " string )? "}""#
        );
    }

    #[test]
    fn objects_without_required_fields_may_start_with_any() {
        let mut g = Grammar::default();
        let props = json!({"a": {"type": "string"}, "b": {"type": "number"}});
        let Value::Object(props) = props else { unreachable!() };
        g.object(&props, None, "o");
        assert_eq!(
            g.rules["o"],
            r#""{" ( "\"a\": " string ( ", " "\"b\": " number )? | "\"b\": " number )? "}""#
        );
    }

    #[test]
    fn unknown_shapes_fall_back_to_any_json() {
        let mut g = Grammar::default();
        assert_eq!(g.rule_for(&json!({"$ref": "#/x"}), "r"), "value");
        assert_eq!(g.rule_for(&json!({"type": "object"}), "r"), "object");
        assert_eq!(g.rule_for(&json!({"type": ["string", "null"]}), "r"), r#"( string | "null" )"#);
    }

    #[test]
    fn strings_follow_max_length_and_an_excluded_class() {
        let mut g = Grammar::default();
        let prose = json!({"type": "string", "maxLength": 80, "pattern": "^[^<>{}]*$"});
        assert_eq!(g.rule_for(&prose, "t"), "t");
        assert_eq!(g.rules["t"], r#""\"" t-char0{0,80} "\"""#);
        assert_eq!(g.rules["t-char0"], r#"[^"\\\x7F\x00-\x1F<>{}] | "\\" ["\\/]"#);
        assert_eq!(g.rule_for(&json!({"type": "string", "pattern": "^(a|b)$"}), "u"), "string");
        assert_eq!(validate(&prose, &json!("Fixed greet.")), Ok(()));
        assert!(validate(&prose, &json!("Done.</tool_call>")).unwrap_err().contains("<>{}"));
        assert!(validate(&prose, &json!("x".repeat(81))).unwrap_err().contains("longer than 80"));
    }

    #[test]
    fn strings_follow_a_pattern_of_classes_and_characters() {
        let mut g = Grammar::default();
        let sentence =
            json!({"type": "string", "maxLength": 80, "pattern": r"^[A-Z][^<> ]* [^<>]*\.$"});
        assert_eq!(g.rule_for(&sentence, "s"), "s");
        assert_eq!(g.rules["s"], r#""\"" [A-Z] s-char1{0,38} [ ] s-char3{0,38} [.] "\"""#);
        assert_eq!(g.rules["s-char3"], r#"[^"\\\x7F\x00-\x1F<>] | "\\" ["\\/]"#);
        for ok in ["Fixed greet.py so it returns the name.", "I fixed it. Tests pass."] {
            assert_eq!(validate(&sentence, &json!(ok)), Ok(()), "{ok}");
        }
        let bad = [
            "###",
            "match.py",
            "2024-01-01 12:00",
            "fixed it.",
            "Done.",
            "Fixed <it>.",
            "A fix\nhere.",
        ];
        for bad in bad {
            assert!(
                validate(&sentence, &json!(bad)).unwrap_err().contains("does not match"),
                "{bad}"
            );
        }
        let counted = json!({"type": "string", "pattern": "^[a-c0-9_]+x?$"});
        assert_eq!(g.rule_for(&counted, "c"), "c");
        assert_eq!(g.rules["c"], r#""\"" [a-c0-9_]+ [x]? "\"""#);
        assert_eq!(validate(&counted, &json!("ab_9x")), Ok(()));
        assert!(validate(&counted, &json!("abd")).is_err());
        assert!(validate(&counted, &json!("x")).is_err());
        for unread in ["^a.b$", "a*", r"^[^a-z]$", r"^\d$", "^[^^]$", r"^\^$"] {
            assert_eq!(g.rule_for(&json!({"type": "string", "pattern": unread}), "n"), "string");
        }
    }

    #[test]
    fn parses_calls() {
        let text = r#"<tool_call>{"name": "read_file", "arguments": {"path": "a.rs"}}</tool_call>"#;
        assert_eq!(parse_call(text), Some(("read_file".into(), r#"{"path": "a.rs"}"#.into())));
        assert_eq!(
            parse_call(r#" {"name": "x", "arguments": "{\"n\": 1}"} "#),
            Some(("x".into(), r#"{"n": 1}"#.into()))
        );
        assert_eq!(parse_call(r#"{"name": "x"}"#), Some(("x".into(), "{}".into())));
        assert_eq!(parse_call(r#"<tool_call>{"name": "x", "arguments": {"#), None);
        assert_eq!(parse_call(r#"{"arguments": {}}"#), None);
    }

    #[test]
    fn salvages_what_it_can_of_a_broken_call() {
        let cut = r#"<tool_call>{"name": "answer", "arguments": {"text": "Fixed it by"#;
        assert_eq!(salvage_call(cut), ("answer".into(), r#"{"text": "Fixed it by"#.into()));
        let (name, args) = salvage_call("<tool_call>{\"nam");
        assert_eq!((name.as_str(), args.as_str()), ("", "{\"nam"));
    }

    #[test]
    fn validates_the_enforced_subset() {
        let schema = json!({"type": "object", "required": ["path"], "properties": {
            "path": {"type": "string"}, "n": {"type": "integer"},
            "mode": {"enum": ["a", "b"]}, "xs": {"type": "array", "items": {"type": "number"}}}});
        assert_eq!(
            validate(&schema, &json!({"path": "p", "n": 2, "mode": "a", "xs": [1.5]})),
            Ok(())
        );
        let bad = [
            (json!({}), "missing required property 'path'"),
            (json!({"path": 1}), "path: 1 is not of type string"),
            (json!({"path": "p", "n": 1.5}), "n: 1.5 is not of type integer"),
            (json!({"path": "p", "mode": "c"}), "mode: \"c\" is not one of"),
            (json!({"path": "p", "xs": [true]}), "xs: [0]: true is not of type number"),
            (json!([]), "[] is not of type object"),
        ];
        for (value, expected) in bad {
            let err = validate(&schema, &value).unwrap_err();
            assert!(err.starts_with(expected), "{value}: {err}");
        }
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}

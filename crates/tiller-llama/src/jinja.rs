//! The Jinja environment chat templates are rendered in, made to render as Hugging Face's
//! `apply_chat_template` does in Python: blocks trimmed, Python's string and dict methods, and
//! the helpers templates call (`raise_exception`, `strftime_now`, and `tojson` writing what
//! Python's `json.dumps` writes, key order kept, no HTML escaping).

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use crate::LlamaError;

/// The environment every template is rendered in.
pub fn environment() -> Result<Environment<'static>, LlamaError> {
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
    // Python's None is not iterable (minijinja's is, as an empty sequence): templates test
    // `tools is iterable` before taking its length.
    env.add_test("iterable", |v: Value| !v.is_none() && v.try_iter().is_ok());
    env.add_filter("tojson", |value: Value, kwargs: Kwargs| -> Result<Value, Error> {
        let indent: Option<usize> = kwargs.get("indent")?;
        let _: Option<bool> = kwargs.get("ensure_ascii")?;
        kwargs.assert_all_used()?;
        Ok(Value::from_safe_string(python_json(&value, indent, 0)))
    });
    Ok(env)
}

/// `value` as Python's `json.dumps(value, ensure_ascii=False, indent=indent)` writes it: `", "`
/// and `": "` between items on one line, or one item a line indented by `indent` spaces.
pub fn python_json(value: &Value, indent: Option<usize>, depth: usize) -> String {
    let items: Vec<(Option<String>, Value)> = match value.kind() {
        ValueKind::Map => value
            .try_iter()
            .into_iter()
            .flatten()
            .map(|k| {
                let v = value.get_item(&k).unwrap_or_default();
                (Some(k.to_string()), v)
            })
            .collect(),
        ValueKind::Seq | ValueKind::Iterable => {
            value.try_iter().into_iter().flatten().map(|v| (None, v)).collect()
        }
        ValueKind::Undefined | ValueKind::None => return "null".into(),
        ValueKind::Bool => return if value.is_true() { "true" } else { "false" }.into(),
        ValueKind::Number => return value.to_string(),
        _ => {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            return serde_json::Value::String(text).to_string();
        }
    };
    let (open, close) = if value.kind() == ValueKind::Map { ("{", "}") } else { ("[", "]") };
    if items.is_empty() {
        return format!("{open}{close}");
    }
    let items: Vec<String> = items
        .iter()
        .map(|(key, v)| {
            let v = python_json(v, indent, depth + 1);
            match key {
                Some(k) => format!("{}: {v}", serde_json::Value::String(k.clone())),
                None => v,
            }
        })
        .collect();
    match indent {
        None => format!("{open}{}{close}", items.join(", ")),
        Some(n) => {
            let inner = " ".repeat(n * (depth + 1));
            let outer = " ".repeat(n * depth);
            format!("{open}\n{inner}{}\n{outer}{close}", items.join(&format!(",\n{inner}")))
        }
    }
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

    #[test]
    fn tojson_writes_what_python_writes() {
        let value = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": "x\"<y>\n", "b": [1, 2.5, true, null], "c": {}}),
        ));
        assert_eq!(
            python_json(&value, None, 0),
            r#"{"a": "x\"<y>\n", "b": [1, 2.5, true, null], "c": {}}"#
        );
        assert_eq!(
            python_json(&value, Some(2), 0),
            "{\n  \"a\": \"x\\\"<y>\\n\",\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"c\": {}\n}"
        );
        let env = environment().unwrap();
        let out = env
            .render_str(
                "{{ x | tojson(indent=1) }}|{{ x | tojson }}",
                minijinja::context! { x => vec![1] },
            )
            .unwrap();
        assert_eq!(out, "[\n 1\n]|[1]");
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

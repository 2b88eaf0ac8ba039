//! Where functions start and end. A heuristic, not a parser: a function starts at a line that
//! looks like a definition in its language and ends at its matching closing brace (outside
//! strings and comments, roughly) or, in Python, where the indentation returns.

use std::sync::LazyLock;

use regex::Regex;

use crate::lang::{Kind, Lang, tokens};

/// A function found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub name: String,
    /// First and last line, 1-based.
    pub start: u32,
    pub end: u32,
}

static RUST: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r#"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:(?:const|async|unsafe|extern(?:\s+"[^"]*")?)\s+)*fn\s+([A-Za-z_]\w*)"#,
    )
});
static PYTHON: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)"));
static GO: LazyLock<Regex> = LazyLock::new(|| pattern(r"^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"));
static JS_FUNCTION: LazyLock<Regex> = LazyLock::new(|| {
    pattern(r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)")
});
static JS_ARROW: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"^\s*(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)[^=]*=\s*(?:async\s+)?(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*(?::[^=]+)?=>",
    )
});
static JS_METHOD: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"^\s*(?:(?:public|private|protected|static|async|get|set|override)\s+)*\*?\s*([A-Za-z_$][\w$]*)\s*\([^;()]*\)\s*(?::[^{;]+)?\{\s*$",
    )
});
static C_LIKE: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^\s*([\w\s:<>,*&~\[\]]*?)([A-Za-z_~][\w~]*)\s*\([^;()]*\)[^;]*$"));

fn pattern(p: &str) -> Regex {
    // The patterns are constants; `every_language_finds_its_functions` compiles each one.
    #[allow(clippy::expect_used)]
    Regex::new(p).expect("constant pattern")
}

/// Words that open a block the way a definition does but are not one.
fn is_control(word: &str) -> bool {
    "case catch delete do else for foreach function if lock new return sizeof switch \
     synchronized throw using when while"
        .split_whitespace()
        .any(|w| w == word)
}

/// The functions of `source`, in order of their first line.
pub(crate) fn functions(lang: Lang, source: &str) -> Vec<Span> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((name, end)) = definition(lang, &lines, i, line) else { continue };
        out.push(Span { name: name.to_string(), start: i as u32 + 1, end: end as u32 + 1 });
    }
    out
}

/// The name and last line (0-based) of the function defined at line `i`, if one is.
fn definition<'a>(lang: Lang, lines: &[&str], i: usize, line: &'a str) -> Option<(&'a str, usize)> {
    let name = |re: &Regex| re.captures(line).and_then(|c| c.get(1)).map(|m| m.as_str());
    match lang {
        Lang::Rust => Some((name(&RUST)?, body_end(lang, lines, i, 20)?)),
        Lang::Go => Some((name(&GO)?, body_end(lang, lines, i, 0)?)),
        Lang::Python => Some((name(&PYTHON)?, indent_end(lines, i))),
        Lang::Js => {
            if let Some(n) = name(&JS_ARROW) {
                // An arrow function without a block body is the one line.
                return Some((n, body_end(lang, lines, i, 0).unwrap_or(i)));
            }
            let n = name(&JS_FUNCTION).or_else(|| name(&JS_METHOD))?;
            if is_control(n) {
                return None;
            }
            Some((n, body_end(lang, lines, i, 2)?))
        }
        Lang::CLike => {
            let caps = C_LIKE.captures(line)?;
            let head = caps.get(1).map_or("", |m| m.as_str()).split_whitespace().next();
            let n = caps.get(2)?.as_str();
            if is_control(n) || head.is_some_and(is_control) {
                return None;
            }
            // The body must open at the end of this line or on the next.
            let opens_next = lines.get(i + 1).is_some_and(|l| l.trim_start().starts_with('{'));
            if !line.trim_end().ends_with('{') && !opens_next {
                return None;
            }
            Some((n, body_end(lang, lines, i, 1)?))
        }
    }
}

/// The line (0-based) of the brace closing the body that opens within `look` lines after `start`;
/// `None` when a `;` comes first (a declaration) or the braces never balance.
fn body_end(lang: Lang, lines: &[&str], start: usize, look: usize) -> Option<usize> {
    let (mut depth, mut nesting) = (0usize, 0usize);
    for (i, line) in lines.iter().enumerate().skip(start) {
        for t in tokens(lang, line).into_iter().filter(|t| t.kind == Kind::Punct) {
            match t.text {
                "(" | "[" => nesting += 1,
                ")" | "]" => nesting = nesting.saturating_sub(1),
                "{" => depth += 1,
                "}" if depth == 1 => return Some(i),
                "}" => depth = depth.saturating_sub(1),
                ";" if depth == 0 && nesting == 0 => return None,
                _ => {}
            }
        }
        if depth == 0 && i >= start + look {
            return None;
        }
    }
    None
}

/// The last line (0-based) of the Python function whose `def` is at `start`: the signature runs
/// until its brackets balance, the body while lines are blank or indented deeper than the `def`.
fn indent_end(lines: &[&str], start: usize) -> usize {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut open = 0i32;
    let mut signature_end = start;
    for (i, line) in lines.iter().enumerate().skip(start) {
        for t in tokens(Lang::Python, line) {
            match t.text {
                "(" | "[" | "{" => open += 1,
                ")" | "]" | "}" => open -= 1,
                _ => {}
            }
        }
        signature_end = i;
        if open <= 0 {
            break;
        }
    }
    let base = indent(lines[start]);
    let mut end = signature_end;
    for (i, line) in lines.iter().enumerate().skip(signature_end + 1) {
        if line.trim().is_empty() {
            continue;
        }
        if indent(line) <= base {
            break;
        }
        end = i;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(lang: Lang, src: &str) -> Vec<(String, u32, u32)> {
        functions(lang, src).into_iter().map(|s| (s.name, s.start, s.end)).collect()
    }

    fn spans(list: &[(&str, u32, u32)]) -> Vec<(String, u32, u32)> {
        list.iter().map(|&(n, a, b)| (n.to_string(), a, b)).collect()
    }

    #[test]
    fn every_language_finds_its_functions() {
        let rust = "pub(crate) async fn load<'a>(p: &'a str)\n    -> [u8; 4]\nwhere\n{\n    let s = \"}\";\n    if x { y() }\n}\n\ntrait T {\n    fn decl(&self);\n}\nfn one() { 1 }\n";
        assert_eq!(found(Lang::Rust, rust), spans(&[("load", 1, 7), ("one", 12, 12)]));

        let python = "class A:\n    async def m(self,\n            x):\n        if x:\n\n            return 1\n    def n(self): return 2\nx = 1\n";
        assert_eq!(found(Lang::Python, python), spans(&[("m", 2, 6), ("n", 7, 7)]));

        let js = "export function a(x) {\n  return '{';\n}\nconst b = async (y) => {\n  y();\n};\nconst c = z => z + 1;\nclass K {\n  get d() {\n    if (x) {\n    }\n  }\n}\nit('t', function () {\n});\n";
        assert_eq!(
            found(Lang::Js, js),
            spans(&[("a", 1, 3), ("b", 4, 6), ("c", 7, 7), ("d", 9, 12)])
        );

        let go = "func (r *T) Run(x int) error {\n\treturn nil\n}\n\nfunc main() {\n}\n";
        assert_eq!(found(Lang::Go, go), spans(&[("Run", 1, 3), ("main", 5, 6)]));

        let c = "static int add(int a, int b)\n{\n    if (a) {\n        return a + b;\n    }\n}\nint decl(int);\nwhile (x) {\n}\n";
        assert_eq!(found(Lang::CLike, c), spans(&[("add", 1, 6)]));
    }

    #[test]
    fn java_methods_and_control_blocks() {
        let java = "public class A {\n    public static void main(String[] args) {\n        for (int i = 0; i < 3; i++) {\n            run(i);\n        }\n    }\n}\n";
        assert_eq!(found(Lang::CLike, java), spans(&[("main", 2, 6)]));
    }

    #[test]
    fn unbalanced_braces_are_no_function() {
        assert_eq!(found(Lang::Rust, "fn f() {\n    g();\n"), []);
    }
}

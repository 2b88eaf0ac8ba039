//! Source languages by file extension, a rough tokenizer, and lines reduced to what duplicate
//! detection compares: their tokens ("same") and their shape (identifiers, numbers and string
//! literals replaced by placeholders, keywords kept).

use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

/// The languages tiller-review reads. Other files count towards lines added and removed only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    Rust,
    Python,
    /// JavaScript and TypeScript.
    Js,
    Go,
    /// C, C++, Java, C#, Kotlin, Swift, Scala, PHP: brace languages without a `fn` keyword.
    CLike,
}

impl Lang {
    /// The language of `path` by its extension, if it is source code tiller-review knows.
    pub(crate) fn of(path: &str) -> Option<Lang> {
        Some(match Path::new(path).extension()?.to_str()? {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" => Lang::Js,
            "go" => Lang::Go,
            "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "java" | "cs" | "kt" | "swift"
            | "scala" | "php" => Lang::CLike,
            _ => return None,
        })
    }

    fn line_comment(self) -> &'static str {
        if self == Lang::Python { "#" } else { "//" }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    Keyword,
    Number,
    Str,
    Punct,
}

/// A token of one line: comments and whitespace are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
}

/// The tokens of one line. Strings are assumed to close on the line they open; a block comment
/// is skipped when it closes on its line, and ends the line otherwise.
pub(crate) fn tokens(lang: Lang, line: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = line[i..].chars().next() {
        let rest = &line[i..];
        let (kind, len) = if c.is_whitespace() {
            (None, c.len_utf8())
        } else if rest.starts_with(lang.line_comment()) {
            break;
        } else if lang != Lang::Python && rest.starts_with("/*") {
            match rest[2..].find("*/") {
                Some(at) => (None, at + 4),
                None => break,
            }
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let len = prefix_len(rest, |c| c.is_alphanumeric() || c == '_' || c == '$');
            let kind = if is_keyword(&rest[..len]) { Kind::Keyword } else { Kind::Word };
            (Some(kind), len)
        } else if c.is_ascii_digit() {
            (Some(Kind::Number), prefix_len(rest, |c| c.is_alphanumeric() || c == '.' || c == '_'))
        } else if c == '"' || c == '`' || (c == '\'' && lang != Lang::Rust) {
            (Some(Kind::Str), string_len(rest, c))
        } else if c == '\'' {
            // Rust: a char literal ('x', '\n'), or else a lifetime's quote.
            match rest.chars().nth(1) {
                Some('\\') => (Some(Kind::Str), string_len(rest, c)),
                Some(x) if rest[1 + x.len_utf8()..].starts_with('\'') => {
                    (Some(Kind::Str), 2 + x.len_utf8())
                }
                _ => (Some(Kind::Punct), 1),
            }
        } else {
            (Some(Kind::Punct), c.len_utf8())
        };
        if let Some(kind) = kind {
            out.push(Token { kind, text: &rest[..len] });
        }
        i += len;
    }
    out
}

/// Byte length of the longest prefix of `s` whose chars satisfy `keep`.
fn prefix_len(s: &str, keep: impl Fn(char) -> bool) -> usize {
    s.find(|c: char| !keep(c)).unwrap_or(s.len())
}

/// Byte length of the string literal opening `s` with `quote`, to the end of the line when it
/// does not close there.
fn string_len(s: &str, quote: char) -> usize {
    let mut escaped = false;
    for (at, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => return at + c.len_utf8(),
            _ => {}
        }
    }
    s.len()
}

/// Keywords of the languages above: they stay in a shape, so `if` and `while` differ.
static KEYWORDS: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    "abstract and as assert async auto await bool boolean break byte case catch chan char \
     class const continue def default defer del delete do double dyn elif else enum except \
     export extends extern False false final finally float fn for from func function go goto \
     if impl implements import in instanceof int interface is lambda let long loop map match \
     mod move mut namespace new nil None not null or override package pass private protected \
     pub public raise range ref return select Self self short signed sizeof static struct \
     super switch template this throw throws trait True true try type typedef typeof \
     undefined union unsafe unsigned use using var virtual void where while with yield"
        .split_whitespace()
        .collect()
});

fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(word)
}

/// One line that duplicate detection looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// 1-based, in the file.
    pub number: u32,
    /// The tokens joined by single spaces: equal for lines that differ only in whitespace.
    pub text: String,
    /// The tokens with identifiers, numbers and strings as placeholders.
    pub shape: String,
}

/// The lines of `source` worth comparing: blank lines, comments, lines of punctuation only (`}`,
/// `]);`) and imports are dropped, so that trivial runs do not count as duplication.
pub(crate) fn normalise(lang: Lang, source: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        if lang != Lang::Python && (trimmed.starts_with("* ") || trimmed == "*") {
            continue; // inside a block comment
        }
        let tokens = tokens(lang, line);
        if tokens.iter().all(|t| t.kind == Kind::Punct) || is_import(lang, &tokens) {
            continue;
        }
        let text: Vec<&str> = tokens.iter().map(|t| t.text).collect();
        let shape: Vec<&str> = tokens
            .iter()
            .map(|t| match t.kind {
                Kind::Word => "I",
                Kind::Number => "0",
                Kind::Str => "\"\"",
                Kind::Keyword | Kind::Punct => t.text,
            })
            .collect();
        out.push(Line { number: i as u32 + 1, text: text.join(" "), shape: shape.join(" ") });
    }
    out
}

fn is_import(lang: Lang, tokens: &[Token]) -> bool {
    let word = |i: usize| tokens.get(i).map_or("", |t| t.text);
    matches!(word(0), "use" | "import" | "package")
        || (word(0), word(1)) == ("pub", "use")
        || (word(0), word(1)) == ("#", "include")
        || (lang == Lang::Python && word(0) == "from")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lang: Lang, line: &str) -> Vec<&str> {
        tokens(lang, line).into_iter().map(|t| t.text).collect()
    }

    fn shape(lang: Lang, line: &str) -> String {
        normalise(lang, line).pop().map(|l| l.shape).unwrap_or_default()
    }

    #[test]
    fn keywords_are_known() {
        assert!(is_keyword("while") && is_keyword("None") && !is_keyword("whilst"));
    }

    #[test]
    fn languages_come_from_the_extension() {
        assert_eq!(Lang::of("src/a.rs"), Some(Lang::Rust));
        assert_eq!(Lang::of("x/y.test.tsx"), Some(Lang::Js));
        assert_eq!(Lang::of("Main.java"), Some(Lang::CLike));
        assert_eq!(Lang::of("dir.rs/README"), None);
        assert_eq!(Lang::of("Cargo.lock"), None);
    }

    #[test]
    fn tokens_skip_whitespace_comments_and_keep_strings_whole() {
        assert_eq!(texts(Lang::Rust, "foo(a,b)  // note"), ["foo", "(", "a", ",", "b", ")"]);
        assert_eq!(
            texts(Lang::Js, "f('a b', /* x */ \"c\\\"d\")"),
            ["f", "(", "'a b'", ",", "\"c\\\"d\"", ")"]
        );
        assert_eq!(texts(Lang::Python, "x = 1.5e3  # why"), ["x", "=", "1.5e3"]);
        // Rust: a lifetime is not a char literal; a char literal is one token.
        assert_eq!(texts(Lang::Rust, "&'a str, '{'"), ["&", "'", "a", "str", ",", "'{'"]);
    }

    #[test]
    fn same_text_ignores_whitespace_only() {
        let a = normalise(Lang::Rust, "let x = f(a,b);");
        let b = normalise(Lang::Rust, "  let  x=f( a, b ) ;");
        assert_eq!(a[0].text, b[0].text);
        assert_ne!(a[0].text, normalise(Lang::Rust, "let y = f(a, b);")[0].text);
    }

    #[test]
    fn shapes_replace_names_numbers_and_strings_but_keep_keywords() {
        assert_eq!(shape(Lang::Rust, "for x in xs {"), shape(Lang::Rust, "for item in list {"));
        assert_eq!(shape(Lang::Rust, "for x in xs {"), "for I in I {");
        assert_ne!(shape(Lang::Rust, "if ok {"), shape(Lang::Rust, "while ok {"));
        assert_eq!(shape(Lang::Python, "n = g(\"a\", 1)"), shape(Lang::Python, "m = h('b', 22)"));
        assert_ne!(shape(Lang::Python, "n = g(a)"), shape(Lang::Python, "n = g(a, b)"));
    }

    #[test]
    fn trivial_lines_are_dropped_with_their_numbers_kept() {
        let src = "fn f() {\n\n    }\n]);\n// c\n/* d */\n * e\nuse a::b;\n    g(1);\n";
        let lines = normalise(Lang::Rust, src);
        let numbers: Vec<u32> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [1, 9]);
        assert_eq!(lines[1].text, "g ( 1 ) ;");
        let py = normalise(Lang::Python, "import os\nfrom a import b\n# c\nx = 1\n");
        assert_eq!(py.len(), 1);
    }
}

//! Secret redaction: finding credentials in text bound for a remote model and replacing each one
//! with a placeholder that names its kind and carries nothing of its value.
//!
//! Detection is by known shapes only: provider token formats, PEM private keys, passwords in
//! URLs, and values assigned to secret-sounding names. There is no entropy scan of free text, so
//! commit hashes, digests, UUIDs and base64 data pass through untouched. Unquoted assignments are
//! recognised at the start of a line (`.env`, YAML, INI) and as `--flag=value`; quoted ones
//! anywhere. Code that reads a secret (`os.environ["KEY"]`, `get_password()`) is left alone.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::{Captures, Regex, RegexSet};

/// What every placeholder starts with.
pub const PLACEHOLDER_PREFIX: &str = "[REDACTED:";

/// Finds secrets in text and replaces them with placeholders.
///
/// Building one compiles some twenty patterns; build it once and share it.
#[derive(Debug, Clone)]
pub struct Redactor {
    set: RegexSet,
    regexes: Vec<Regex>,
}

/// Text with its secrets replaced, and a record of each replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted<'a> {
    /// The text with every secret replaced; borrowed when nothing was found.
    pub text: Cow<'a, str>,
    /// One entry per replacement, in order of position.
    pub findings: Vec<Finding>,
}

/// One replaced secret. It never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found, e.g. `"github-token"`, `"private-key"`, `"env-password"`.
    pub kind: &'static str,
    /// The 1-based line of the input where the secret starts.
    pub line: u32,
    /// What the text carries instead, e.g. `"[REDACTED:github-token:1]"`. The number is the same
    /// for equal secrets within one text and different for different ones.
    pub placeholder: String,
}

/// How a match is confirmed before it counts as a secret.
#[derive(Clone, Copy)]
enum Check {
    /// The format alone is distinctive enough.
    Format,
    /// The value must look random: mixed case and digits, or hex with letters and digits.
    Random,
    /// The value must not be an obvious placeholder.
    NotPlaceholder,
    /// The name decides the kind, and the value must not be a placeholder (see [`assignment`]).
    Assignment,
}

struct Rule {
    /// The kind reported, unless the check decides it.
    kind: &'static str,
    check: Check,
    /// The secret is the last capture group that took part in the match, or the whole match.
    /// `\b` is rewritten to an ASCII word boundary, which the regex crate's DFA can run on
    /// non-ASCII text (a Unicode one makes it fall back to a much slower engine).
    pattern: &'static str,
}

/// A name that may hold a secret (the words are checked in [`assignment`]).
macro_rules! name {
    () => {
        r"(?P<name>[A-Za-z0-9_.-]*(?i:pass|secret|token|key|auth|credential|salt)[A-Za-z0-9_.-]*)"
    };
}

/// A value in double or single quotes, on one line.
macro_rules! quoted {
    () => {
        r#"(?:"([^"\n]*)"|'([^'\n]*)')"#
    };
}

/// An unquoted value: no spaces, quotes, brackets or separators, so that calls, indexing,
/// `${VAR}`, `<placeholder>` and `Type::Path` are not taken for one.
macro_rules! bare {
    () => {
        r#"(?P<bare>[^\s"'`()\[\]{};,<>:=][^\s"'`()\[\]{};,<>]*)"#
    };
}

/// Earlier rules win when two find a secret at the same position, so the specific formats come
/// before the generic assignment rules.
const RULES: &[Rule] = &[
    Rule {
        kind: "private-key",
        check: Check::Format,
        // The body may not hold quotes or code punctuation, so that source code naming the
        // markers is not taken for a key. A block cut off before its end runs to the end of the
        // text. (A separate alternative for that case made regex 1.13 pick the wrong branch.)
        pattern: concat!(
            r#"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[^`'";{}<>]*?"#,
            r"(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)"
        ),
    },
    Rule {
        kind: "aws-access-key",
        check: Check::Format,
        pattern: r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    },
    Rule {
        kind: "github-token",
        check: Check::Format,
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
    },
    Rule { kind: "gitlab-token", check: Check::Format, pattern: r"\bglpat-[A-Za-z0-9_-]{20,}" },
    Rule {
        kind: "slack-token",
        check: Check::Format,
        pattern: r"\bxox[abpr]-[0-9]+-[A-Za-z0-9-]{10,}",
    },
    Rule {
        kind: "slack-webhook",
        check: Check::Format,
        pattern: r"\bhooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/]{20,})",
    },
    Rule {
        kind: "stripe-key",
        check: Check::Format,
        pattern: r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{24,}\b",
    },
    Rule { kind: "google-api-key", check: Check::Format, pattern: r"\bAIza[A-Za-z0-9_-]{35}" },
    Rule { kind: "anthropic-key", check: Check::Random, pattern: r"\bsk-ant-[A-Za-z0-9_-]{32,}" },
    Rule { kind: "openai-key", check: Check::Random, pattern: r"\bsk-[A-Za-z0-9_-]{32,}" },
    Rule { kind: "huggingface-token", check: Check::Format, pattern: r"\bhf_[A-Za-z0-9]{34}\b" },
    Rule { kind: "npm-token", check: Check::Format, pattern: r"\bnpm_[A-Za-z0-9]{36}\b" },
    Rule {
        kind: "jwt",
        check: Check::Format,
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    },
    Rule {
        kind: "url-password",
        check: Check::NotPlaceholder,
        pattern: r#"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"'`\[\]{}<>]*:([^\s/?#@"'`\[\]{}<>]+)@"#,
    },
    Rule {
        kind: "auth-header",
        check: Check::Random,
        pattern: r"\b(?i:bearer|basic)[ \t]+([A-Za-z0-9._~+/-]{16,}=*)",
    },
    // Quoted name, anywhere: `"name": "v"`, `'name' => 'v'`.
    Rule {
        kind: "assignment",
        check: Check::Assignment,
        pattern: concat!(r#"["']"#, name!(), r#"["'][ \t]*(?:=>|[:=])[ \t]*"#, quoted!()),
    },
    // Unquoted name with `=`, anywhere: `name = "v"`, `f(name='v')`, `--name="v"`.
    Rule {
        kind: "assignment",
        check: Check::Assignment,
        pattern: concat!(r"\b", name!(), r"[ \t]*:?=[ \t]*", quoted!()),
    },
    // At the start of a line, a quoted value or a bare one running to its end: `.env`, YAML,
    // INI, Dockerfile `ENV`.
    Rule {
        kind: "assignment",
        check: Check::Assignment,
        pattern: concat!(
            r"(?m)^[ \t]*(?:-[ \t]+)?(?:(?:export|ENV|ARG)[ \t]+)?",
            name!(),
            r"[ \t]*(?::=|[:=])[ \t]*(?:",
            quoted!(),
            "|",
            bare!(),
            r"(?:[ \t]+#.*)?[ \t\r]*$)"
        ),
    },
    // Bare command-line flag: `--password=v`.
    Rule {
        kind: "assignment",
        check: Check::Assignment,
        pattern: concat!(r"(?:^|[ \t])--", name!(), "=", bare!()),
    },
];

impl Redactor {
    /// Compiles the patterns.
    pub fn new() -> Redactor {
        let patterns: Vec<String> =
            RULES.iter().map(|r| r.pattern.replace(r"\b", r"(?-u:\b)")).collect();
        // The patterns are constants, and `compiles_every_rule` checks that each one compiles.
        #[allow(clippy::expect_used)]
        let compile = |p: &String| Regex::new(p).expect("constant pattern");
        #[allow(clippy::expect_used)]
        let set = RegexSet::new(&patterns).expect("constant patterns");
        Redactor { set, regexes: patterns.iter().map(compile).collect() }
    }

    /// `text` with every secret replaced, and what was replaced (in order of position).
    pub fn redact<'a>(&self, text: &'a str) -> Redacted<'a> {
        // (start, end, rule index, kind) of each secret found.
        let mut spans = Vec::new();
        for i in self.set.matches(text).iter() {
            for caps in self.regexes[i].captures_iter(text) {
                let Some(m) = caps.iter().skip(1).flatten().last().or(caps.get(0)) else {
                    continue;
                };
                if let Some(kind) = confirm(&RULES[i], &caps, m.as_str()) {
                    spans.push((m.start(), m.end(), i, kind));
                }
            }
        }
        if spans.is_empty() {
            return Redacted { text: Cow::Borrowed(text), findings: Vec::new() };
        }
        spans.sort_unstable_by_key(|&(start, _, rule, _)| (start, rule));

        let mut out = String::with_capacity(text.len());
        let mut findings = Vec::new();
        let mut numbers: HashMap<&str, usize> = HashMap::new();
        let (mut copied, mut line) = (0, 1);
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end, _, kind)) = spans.next() {
            // Overlapping finds merge into one, so no part of either is left in the clear.
            while let Some(&(next_start, next_end, ..)) = spans.peek()
                && next_start < end
            {
                end = end.max(next_end);
                spans.next();
            }
            let next_number = numbers.len() + 1;
            let number = *numbers.entry(&text[start..end]).or_insert(next_number);
            let placeholder = format!("{PLACEHOLDER_PREFIX}{kind}:{number}]");
            line += text[copied..start].bytes().filter(|&b| b == b'\n').count();
            findings.push(Finding {
                kind,
                line: u32::try_from(line).unwrap_or(u32::MAX),
                placeholder: placeholder.clone(),
            });
            line += text[start..end].bytes().filter(|&b| b == b'\n').count();
            out.push_str(&text[copied..start]);
            out.push_str(&placeholder);
            copied = end;
        }
        out.push_str(&text[copied..]);
        Redacted { text: Cow::Owned(out), findings }
    }
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor::new()
    }
}

/// What kind of secret `value` (matched by `rule`) is, or `None` when the check rejects it.
fn confirm(rule: &Rule, caps: &Captures, value: &str) -> Option<&'static str> {
    match rule.check {
        Check::Format => Some(rule.kind),
        Check::Random => (mixed(value) || hex(value)).then_some(rule.kind),
        Check::NotPlaceholder => (!placeholder(value)).then_some(rule.kind),
        Check::Assignment => {
            let name = caps.name("name").map_or("", |m| m.as_str());
            assignment(name, value, caps.name("bare").is_some())
        }
    }
}

/// Words of a name that make its value a secret.
const SECRET_WORDS: &str = "password passwd passphrase secret token apikey credential credentials";

/// Words that, after a secret word, make a name about the secret rather than the secret itself:
/// `TOKEN_LIMIT`, `password_file`, `SSH_AUTH_SOCK`, `TokenStream`.
const ABOUT_WORDS: &str = "limit limits count max min size len length type kind url uri endpoint \
    host port file path dir name env var method mode header prefix suffix field expiry expires \
    expiration ttl timeout lifetime usage used budget format encoding policy enabled required id \
    sock socket user username email provider hint prompt label pattern stream tree list map index \
    pos span start end offset";

/// Words that, before a secret word, do the same: `MAX_TOKEN`, `id-token: write` (a GitHub
/// Actions permission), `--jobserver-auth=3,4` (in every `MAKEFLAGS`).
const ABOUT_BEFORE_WORDS: &str = "max min num id jobserver";

/// Words that mark a name whose long random value is not a secret: `public_key`, `cache_key`.
const PUBLIC_WORDS: &str = "public pub id cache primary foreign sort";

/// Whether `word` is one of the space-separated `words`.
fn listed(words: &str, word: &str) -> bool {
    words.split_whitespace().any(|w| w == word)
}

/// The kind of secret assigned to `name`, or `None`. `bare` is true for an unquoted value.
///
/// A name is a secret's when a secret word (or `auth` last, or `api`/`private`/`access`/`secret`
/// followed by `key`) has no word of [`ABOUT_WORDS`] after it and none of [`ABOUT_BEFORE_WORDS`]
/// before it. Other names with a key-ish word count only when the value is long random hex or
/// base64.
fn assignment(name: &str, value: &str, bare: bool) -> Option<&'static str> {
    if placeholder(value) || (bare && code(value)) {
        return None;
    }
    let words = words(name);
    let has = |w: &str| words.iter().any(|x| x == w);
    if has("aws") && has("secret") && value.len() == 40 && base64ish(value) {
        return Some("aws-secret-key");
    }
    let secret_at = (0..words.len()).rev().find(|&i| {
        let (w, prev) = (words[i].as_str(), i.checked_sub(1).map_or("", |p| words[p].as_str()));
        listed(SECRET_WORDS, w)
            || (w == "auth" && i + 1 == words.len())
            || (w == "key" && matches!(prev, "api" | "private" | "access" | "secret"))
    });
    if let Some(i) = secret_at
        && !words[i + 1..].iter().any(|w| listed(ABOUT_WORDS, w))
        && !words[..i].iter().any(|w| listed(ABOUT_BEFORE_WORDS, w))
    {
        let password = matches!(words[i].as_str(), "password" | "passwd" | "passphrase");
        return Some(if password { "env-password" } else { "env-secret" });
    }
    let keyish = |w: &String| matches!(w.as_str(), "key" | "salt") || listed(SECRET_WORDS, w);
    let public = words.iter().any(|w| listed(PUBLIC_WORDS, w));
    (words.iter().any(keyish) && !public && high_entropy(value)).then_some("high-entropy")
}

/// The lower-cased words of an identifier: split at `_`, `-`, `.` and camel-case humps.
fn words(name: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        spaced.push(if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { ' ' });
    }
    spaced.split_whitespace().map(str::to_owned).collect()
}

/// Whether `value` stands for a secret rather than being one: empty, `xxxx`, `****`, `<...>`,
/// `$VAR`, `${VAR}`, `{template}`, `null`, `true`, `your-token-here`, an example, or an
/// earlier placeholder of ours.
fn placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    v.chars().all(|c| matches!(c, 'x' | 'X' | '*' | '.' | '-' | '_'))
        || v.starts_with('$')
        || (v.starts_with('{') && v.ends_with('}'))
        || v.starts_with(PLACEHOLDER_PREFIX)
        || (v.starts_with('<') && v.ends_with('>'))
        || matches!(lower.as_str(), "null" | "nil" | "none" | "undefined" | "true" | "false")
        || lower.contains("example")
        || (lower.starts_with("your") && lower.ends_with("here"))
}

/// Whether an unquoted value reads as code rather than a literal: a field path (`self.token`)
/// or a type in a declaration (`password: str`, `token: String`).
fn code(value: &str) -> bool {
    const TYPES: &str = "str string bytes int integer bool boolean float number any object \
        secretstr secretbytes usize u32 u64 i32 i64";
    let ident = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    listed(TYPES, &value.to_ascii_lowercase())
        || (value.contains('.') && value.split('.').all(ident))
}

/// Whether `s` mixes upper case, lower case and digits.
fn mixed(s: &str) -> bool {
    let any = |f: fn(&u8) -> bool| s.as_bytes().iter().any(f);
    any(u8::is_ascii_uppercase) && any(u8::is_ascii_lowercase) && any(u8::is_ascii_digit)
}

/// Whether `s` is hex with both letters and digits.
fn hex(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().all(u8::is_ascii_hexdigit)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

/// Whether `s` is made of base64 (standard or URL-safe) characters, with optional padding.
fn base64ish(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// Whether `s` looks like a random key: 32 or more characters of [`hex`], or of base64 that is
/// [`mixed`].
fn high_entropy(s: &str) -> bool {
    s.len() >= 32 && (hex(s) || (base64ish(s) && mixed(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const HEX: &str = "0123456789abcdef";

    /// `len` pseudo-random characters of `alphabet`. Fake secrets are generated rather than
    /// written out, so that secret scanners do not flag this file.
    fn fake(alphabet: &str, len: usize, seed: u64) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chars[(x % chars.len() as u64) as usize]
            })
            .collect()
    }

    fn redact(text: &str) -> Redacted<'_> {
        static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::new);
        REDACTOR.redact(text)
    }

    /// (kind, secret, context where `{}` stands for the secret)
    fn secrets() -> Vec<(&'static str, String, &'static str)> {
        let pem = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n{}\n-----END OPENSSH PRIVATE KEY-----",
            fake(BASE64, 70, 40),
            fake(BASE64, 30, 41)
        );
        vec![
            (
                "aws-access-key",
                format!("AKIA{}", fake(UPPER_ALNUM, 16, 1)),
                "export AWS_ACCESS_KEY_ID={}\n",
            ),
            (
                "aws-access-key",
                format!("ASIA{}", fake(UPPER_ALNUM, 16, 2)),
                "key id {}, region eu-west-1",
            ),
            ("aws-secret-key", fake(BASE64, 40, 3), "[default]\naws_secret_access_key = {}\n"),
            ("github-token", format!("ghp_{}", fake(ALNUM, 36, 4)), "Authorization: token {}"),
            (
                "github-token",
                format!("ghs_{}", fake(ALNUM, 36, 5)),
                "git push https://x-access-token:{}@github.com/o/r",
            ),
            (
                "github-token",
                format!("github_pat_{}_{}", fake(ALNUM, 22, 6), fake(ALNUM, 59, 7)),
                "GH_TOKEN={} gh pr list",
            ),
            ("gitlab-token", format!("glpat-{}", fake(BASE64URL, 20, 8)), "PRIVATE-TOKEN: {}"),
            (
                "slack-token",
                format!(
                    "xoxb-{}-{}-{}",
                    fake("0123456789", 12, 9),
                    fake("0123456789", 13, 10),
                    fake(ALNUM, 24, 11)
                ),
                "client = WebClient(token=\"{}\")",
            ),
            (
                "slack-webhook",
                format!(
                    "T{}/B{}/{}",
                    fake(UPPER_ALNUM, 10, 12),
                    fake(UPPER_ALNUM, 10, 13),
                    fake(ALNUM, 24, 14)
                ),
                "curl -X POST https://hooks.slack.com/services/{} -d @msg.json",
            ),
            ("stripe-key", format!("sk_live_{}", fake(ALNUM, 24, 15)), "Stripe.api_key = '{}';"),
            ("stripe-key", format!("rk_live_{}", fake(ALNUM, 99, 16)), "stripe = {} # restricted"),
            (
                "stripe-key",
                format!("sk_test_{}", fake(ALNUM, 24, 17)),
                "curl -u {}: https://api.stripe.com",
            ),
            (
                "google-api-key",
                format!("AIza{}", fake(BASE64URL, 35, 18)),
                "maps.js?key={}&callback=init",
            ),
            ("openai-key", format!("sk-{}", fake(ALNUM, 48, 19)), "openai.api_key = {}"),
            (
                "openai-key",
                format!("sk-proj-{}", fake(BASE64URL, 156, 20)),
                "OPENAI_API_KEY=\"{}\"",
            ),
            (
                "anthropic-key",
                format!("sk-ant-api03-{}AA", fake(BASE64URL, 93, 21)),
                "x-api-key: {}\n",
            ),
            ("huggingface-token", format!("hf_{}", fake(ALNUM, 34, 22)), "login(token={})"),
            (
                "npm-token",
                format!("npm_{}", fake(ALNUM, 36, 23)),
                "//registry.npmjs.org/:_authToken={}\n",
            ),
            (
                "jwt",
                format!(
                    "eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}",
                    fake(BASE64URL, 40, 24),
                    fake(BASE64URL, 43, 25)
                ),
                "Cookie: session={}; Path=/",
            ),
            ("private-key", pem, "key file:\n{}\nend of file"),
            (
                "url-password",
                "s3cr3t-Pa55".into(),
                "DATABASE_URL=postgres://app:{}@db.internal:5432/app",
            ),
            ("url-password", "hunter2".into(), "redis://:{}@cache:6379/0"),
            ("env-password", "hunter2!x".into(), "DB_PASSWORD={}"),
            ("env-password", "changeme".into(), "  password: {}  # prod"),
            ("env-password", "p@ss w0rd".into(), "conn = connect(host=\"db\", password=\"{}\")"),
            ("env-password", "correcthorse".into(), "mysql --password={} -h db"),
            ("env-secret", fake(ALNUM, 24, 26), "{\"client_secret\": \"{}\", \"id\": 4}"),
            ("env-secret", "tok-123".into(), "ENV AUTH_TOKEN={}"),
            ("env-secret", "Zm9vOmJhcg".into(), "- apiKey: {}"),
            ("env-secret", "ab12".into(), "BASIC_AUTH='{}'"),
            ("high-entropy", fake(HEX, 64, 27), "signing_key = \"{}\""),
            ("high-entropy", fake(BASE64, 44, 28), "SESSION_SALT={}"),
            ("auth-header", fake(HEX, 40, 29), "curl -H 'Authorization: Bearer {}' https://api"),
            ("auth-header", "dXNlcjpodW50ZXIy".into(), "Authorization: Basic {}"),
        ]
    }

    #[test]
    fn compiles_every_rule() {
        assert_eq!(Redactor::new().regexes.len(), RULES.len());
    }

    #[test]
    fn redacts_each_format_and_keeps_the_context() {
        for (kind, secret, context) in secrets() {
            let text = context.replace("{}", &secret);
            let r = redact(&text);
            assert_eq!(r.findings.len(), 1, "{kind} in {text:?}: {:?}", r.findings);
            let f = &r.findings[0];
            assert_eq!(f.kind, kind, "{text:?}");
            assert_eq!(f.placeholder, format!("[REDACTED:{kind}:1]"));
            assert_eq!(r.text, context.replace("{}", &f.placeholder), "{kind}");
            assert!(!r.text.contains(&secret));
        }
    }

    #[test]
    fn leaves_near_misses_alone() {
        let near_misses = [
            "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: Jane <jane@example.org>",
            "checksum = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  app.tar.gz",
            "\"integrity\": \"sha512-2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b\"",
            "id = \"123e4567-e89b-12d3-a456-426614174000\"",
            "The AKIA prefix marks long-term keys; AKIA1234 is too short.",
            "pip install scikit-learn  # sk-learn; see task-sk-1",
            "sk-some-long-kebab-case-identifier-name-here",
            "ghp_1234567890abc",
            "password = \"\"",
            "PASSWORD=${DB_PASSWORD}",
            "token: <your-token-here>",
            "API_KEY=your-api-key-here\nSECRET_KEY=xxxxxxxxxxxx\npassword: ****\ntoken = null",
            "AUTH=true\nsecret: \"{{ vault_secret }}\"\nAWS_SECRET_ACCESS_KEY=\"$AWS_SECRET\"",
            "token: ${{ secrets.GITHUB_TOKEN }}",
            "api_key = os.environ[\"API_KEY\"]",
            "api_key=os.getenv(\"KEY\")",
            "def get_password():\n    password = get_password()\n    token = self.token",
            "class Settings(BaseModel):\n    password: SecretStr\n    token: str",
            "const TOKEN_LIMIT: usize = 4096;\nTOKEN_LIMIT = 4096\nmax_tokens: 1024",
            "authors = [\"Jane <jane@example.org>\"]\nauth_method: oauth\n\"token_type\": \"bearer\"",
            "SSH_AUTH_SOCK=/run/user/1000/ssh-agent.socket\nPWD=/home/me/src\nPASSWORD_FILE=/run/pw",
            "if password == \"hunter2\":",
            "    Token::RecursivePrefix\n    | Token::RecursiveSuffix => {}",
            "throw error(\"Unexpected token: \" + t.value + \" of type \" + t.kind);",
            "log(\"bad special token: '%s' = %u\", text, id);",
            "let tts: TokenStream = \"1\".parse().unwrap();\nSecret::Client => \"CLIENT_SECRET\",",
            "permissions:\n  id-token: write\nMAKEFLAGS=-j --jobserver-auth=fifo:/tmp/GMfifo12",
            "cache_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            "hotkey = \"ctrl+k\"\n\"key\": \"Enter\"",
            "Set OPENAI_API_KEY in the environment. Send a Bearer token in the header.",
            "https://user@example.org/a:b@c and http://localhost:8080/x@y",
            "postgres://app:${DB_PASSWORD}@db/app and https://{user}:{password}@{host}/",
            "const BEGIN: &str = \"-----BEGIN PRIVATE KEY-----\";\nfn parse(pem: &str) {}\n\
             const END: &str = \"-----END PRIVATE KEY-----\";",
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqzGJ8p1sbG7vXa3xp6n\n-----END PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0sX7yLk1\n-----END CERTIFICATE-----",
            // Base64 in a data URL matches no rule: image data is not a secret format.
            "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
        ];
        for text in near_misses {
            let r = redact(text);
            assert_eq!(r.findings, [], "{text:?}");
            assert_eq!(r.text, text);
        }
    }

    #[test]
    fn numbers_lines_and_repeats() {
        let (a, b) =
            (format!("ghp_{}", fake(ALNUM, 36, 50)), format!("ghp_{}", fake(ALNUM, 36, 51)));
        let text = format!("one {a}\ntwo\nthree {b} and {a}\nDB_PASSWORD=hunter2\n");
        let r = redact(&text);
        let got: Vec<_> =
            r.findings.iter().map(|f| (f.kind, f.line, f.placeholder.as_str())).collect();
        assert_eq!(
            got,
            [
                ("github-token", 1, "[REDACTED:github-token:1]"),
                ("github-token", 3, "[REDACTED:github-token:2]"),
                ("github-token", 3, "[REDACTED:github-token:1]"),
                ("env-password", 4, "[REDACTED:env-password:3]"),
            ]
        );
        assert_eq!(
            r.text,
            "one [REDACTED:github-token:1]\ntwo\nthree [REDACTED:github-token:2] and \
             [REDACTED:github-token:1]\nDB_PASSWORD=[REDACTED:env-password:3]\n"
        );
    }

    #[test]
    fn redacts_a_pem_block_across_lines() {
        let body = (0..5).map(|i| fake(BASE64, 64, 60 + i)).collect::<Vec<_>>().join("\n");
        let text = format!(
            "fn main() {{}}\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n{body}\n\
             -----END RSA PRIVATE KEY-----\nafter = 1\ntoken = \"t0k\"\n"
        );
        let r = redact(&text);
        assert_eq!(r.findings.len(), 2);
        assert_eq!((r.findings[0].kind, r.findings[0].line), ("private-key", 2));
        assert_eq!((r.findings[1].kind, r.findings[1].line), ("env-secret", 12));
        assert_eq!(
            r.text,
            "fn main() {}\n[REDACTED:private-key:1]\nafter = 1\ntoken = \"[REDACTED:env-secret:2]\"\n"
        );

        let cut = format!("-----BEGIN PRIVATE KEY-----\n{body}");
        assert_eq!(redact(&cut).text, "[REDACTED:private-key:1]");
    }

    #[test]
    fn redacts_only_real_values_in_an_env_file() {
        let env = "\
# database
DB_HOST=db.internal
DB_PASSWORD=Tr0ub4dor&3
DB_PASSWORD_FILE=/run/secrets/db
REDIS_URL=redis://default:r3dis-pw@cache:6379
export STRIPE_SECRET_KEY=\"{stripe}\"
SENTRY_AUTH_TOKEN=
GITHUB_TOKEN=${GITHUB_TOKEN}
API_KEY=<api key>
JWT_SECRET=your-secret-here
TOKEN_TTL=3600
";
        let text = env.replace("{stripe}", &format!("sk_live_{}", fake(ALNUM, 24, 80)));
        let r = redact(&text);
        let got: Vec<_> = r.findings.iter().map(|f| (f.kind, f.line)).collect();
        assert_eq!(got, [("env-password", 3), ("url-password", 5), ("stripe-key", 6)]);
        let expected = env
            .replace("Tr0ub4dor&3", "[REDACTED:env-password:1]")
            .replace("r3dis-pw", "[REDACTED:url-password:2]")
            .replace("{stripe}", "[REDACTED:stripe-key:3]");
        assert_eq!(r.text, expected);
    }

    #[test]
    fn redacting_twice_finds_nothing_new() {
        let text: String = secrets().iter().map(|(_, s, c)| c.replace("{}", s) + "\n").collect();
        let once = redact(&text);
        assert_eq!(once.findings.len(), secrets().len());
        let twice = redact(&once.text);
        assert_eq!(twice.findings, []);
        assert_eq!(twice.text, once.text);
    }

    #[test]
    fn keeps_non_ascii_text_around_secrets() {
        let key = format!("AKIA{}", fake(UPPER_ALNUM, 16, 70));
        let text = format!("clé → {key} ✓\nпароль: Пароль-123\n日本語 password = \"秘密の言葉\"");
        let r = redact(&text);
        assert_eq!(
            r.text,
            "clé → [REDACTED:aws-access-key:1] ✓\nпароль: Пароль-123\n\
             日本語 password = \"[REDACTED:env-password:2]\""
        );
        assert_eq!(r.findings.iter().map(|f| f.line).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn empty_text_is_unchanged() {
        let r = redact("");
        assert_eq!(r.text, "");
        assert_eq!(r.findings, []);
        assert!(matches!(r.text, Cow::Borrowed(_)));
    }
}

//! The repository map: the definitions (functions, types, methods, classes) of each code file,
//! found with tree-sitter and the tags queries the grammars ship, ranked by their relevance to
//! the words of a task, and cut to a budget in bytes.
//!
//! Files are the nodes of a graph with an edge from a file that uses a name to each file that
//! defines it (every identifier in the syntax tree is a use: the grammars' queries capture only
//! calls); personalised PageRank over it, started from the files the task names and those
//! defining names it mentions, ranks the files. A definition ranks by its share of its file's
//! rank and the rank that reaches it through its name, more where the task mentions the name.

use std::collections::{BTreeMap, BTreeSet};

use tiller_types::text::clip;
use tree_sitter::{Language, Parser, Query, QueryCursor, StreamingIterator};

/// Files larger than this are left out.
const MAX_FILE: usize = 256 << 10;

/// A definition's line is cut to this many characters.
const MAX_LINE: usize = 100;

/// PageRank's damping factor: the share of a file's rank that follows its edges.
const DAMPING: f64 = 0.85;

/// Definitions the TypeScript query of the grammar crate leaves to JavaScript's or leaves out.
const TYPESCRIPT_TAGS: &str = "
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
";

/// The languages mapped, told by a file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
}

impl Lang {
    fn of(path: &str) -> Option<Lang> {
        Some(match path.rsplit_once('.')?.1 {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "js" | "jsx" | "mjs" | "cjs" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            _ => return None,
        })
    }

    fn grammar(self) -> Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }

    /// The tags query; TypeScript's extends JavaScript's, as its grammar does.
    fn tags(self) -> String {
        match self {
            Lang::Rust => tree_sitter_rust::TAGS_QUERY.into(),
            Lang::Python => tree_sitter_python::TAGS_QUERY.into(),
            Lang::JavaScript => tree_sitter_javascript::TAGS_QUERY.into(),
            Lang::TypeScript | Lang::Tsx => [
                tree_sitter_javascript::TAGS_QUERY,
                tree_sitter_typescript::TAGS_QUERY,
                TYPESCRIPT_TAGS,
            ]
            .concat(),
            Lang::Go => tree_sitter_go::TAGS_QUERY.into(),
        }
    }
}

/// A definition: its name, its line (from 1) and the first line of its source, trimmed.
#[derive(Debug)]
struct Def {
    name: String,
    line: usize,
    text: String,
}

/// One file's definitions, and how often each identifier occurs in it elsewhere than in them.
#[derive(Debug)]
struct FileTags {
    path: String,
    defs: Vec<Def>,
    uses: BTreeMap<String, usize>,
}

/// The definitions and uses of names of a set of files, to be ranked and shown.
#[derive(Debug, Default)]
pub struct RepoMap {
    files: Vec<FileTags>,
}

impl RepoMap {
    /// Reads `files` as (path, text): those in a language mapped, up to 256 KiB, that parse.
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> RepoMap {
        let mut parsers: BTreeMap<Lang, Option<(Parser, Query)>> = BTreeMap::new();
        let mut map = RepoMap::default();
        for (path, text) in files {
            let Some(lang) = Lang::of(path).filter(|_| text.len() <= MAX_FILE) else {
                continue;
            };
            let parser = parsers.entry(lang).or_insert_with(|| {
                let mut parser = Parser::new();
                parser.set_language(&lang.grammar()).ok()?;
                Some((parser, Query::new(&lang.grammar(), &lang.tags()).ok()?))
            });
            if let Some((parser, query)) = parser
                && let Some(tags) = FileTags::read(path, text, parser, query)
            {
                map.files.push(tags);
            }
        }
        map.files.sort_by(|a, b| a.path.cmp(&b.path));
        map
    }

    /// Whether a file at `path` is in a language mapped.
    pub fn maps(path: &str) -> bool {
        Lang::of(path).is_some()
    }

    /// The paths of the files, most relevant to `mentions` (a task, a test's output) first.
    pub fn ranked(&self, mentions: &str) -> Vec<&str> {
        let (rank, _) = self.rank(mentions);
        self.order(&rank).into_iter().map(|f| self.files[f].path.as_str()).collect()
    }

    /// The map of the files but those in `skip`, in at most `budget` bytes: each file's path,
    /// then its definitions as `line: first line`; files by rank, definitions by line, and the
    /// definitions most relevant to `mentions` kept when not all fit.
    pub fn render(&self, mentions: &str, skip: &[String], budget: usize) -> String {
        let (rank, scores) = self.rank(mentions);
        let mut defs: Vec<(usize, usize)> = (0..self.files.len())
            .filter(|&f| !skip.contains(&self.files[f].path))
            .flat_map(|f| (0..self.files[f].defs.len()).map(move |d| (f, d)))
            .collect();
        // Ties go to the earlier file and line, so the map is the same on every run.
        defs.sort_by(|a, b| scores[b.0][b.1].total_cmp(&scores[a.0][a.1]).then(a.cmp(b)));
        let mut chosen: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut used = 0;
        for (f, d) in defs {
            let header = if chosen.contains_key(&f) { 0 } else { self.files[f].path.len() + 2 };
            let cost = header + line(&self.files[f].defs[d]).len();
            if used + cost <= budget {
                used += cost;
                chosen.entry(f).or_default().insert(d);
            }
        }
        let mut out = String::new();
        for f in self.order(&rank) {
            if let Some(defs) = chosen.get(&f) {
                let file = &self.files[f];
                out.push_str(&format!("{}:\n", file.path));
                defs.iter().for_each(|&d| out.push_str(&line(&file.defs[d])));
            }
        }
        out
    }

    /// The files' indices, by rank and then path.
    fn order(&self, rank: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        order.sort_by(|&a, &b| rank[b].total_cmp(&rank[a]).then(a.cmp(&b)));
        order
    }

    /// Each file's rank, and each of its definitions' scores.
    fn rank(&self, mentions: &str) -> (Vec<f64>, Vec<Vec<f64>>) {
        let words = words(mentions);
        let mut definers: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        for (f, file) in self.files.iter().enumerate() {
            for def in &file.defs {
                definers.entry(&def.name).or_default().insert(f);
            }
        }
        let mentioned: BTreeSet<&str> =
            definers.keys().copied().filter(|n| mentions_all(&words, n)).collect();
        // A name the task mentions counts more; a short or private one, and one defined in
        // many files, less.
        let bias = |name: &str| {
            let mentioned = if mentioned.contains(name) { 10.0 } else { 1.0 };
            let plain = if name.len() < 3 || name.starts_with('_') { 0.1 } else { 1.0 };
            mentioned * plain
        };
        let mut edges: Vec<(usize, usize, &str, f64)> = Vec::new();
        for (from, file) in self.files.iter().enumerate() {
            for (name, &count) in &file.uses {
                let Some(to) = definers.get(name.as_str()) else {
                    continue;
                };
                let weight = bias(name) * (count as f64).sqrt() / to.len() as f64;
                edges
                    .extend(to.iter().filter(|&&t| t != from).map(|&t| (from, t, &**name, weight)));
            }
        }
        let mut start: Vec<f64> = self
            .files
            .iter()
            .map(|file| {
                let stem = file.path.rsplit('/').next().and_then(|n| n.split('.').next());
                let named =
                    mentions.contains(&file.path) || stem.is_some_and(|s| mentions_all(&words, s));
                let defined: BTreeSet<&str> = file
                    .defs
                    .iter()
                    .map(|d| d.name.as_str())
                    .filter(|n| mentioned.contains(n))
                    .collect();
                let defined: f64 = defined.iter().map(|n| 1.0 / definers[n].len() as f64).sum();
                f64::from(u8::from(named)) + defined
            })
            .collect();
        let total: f64 = start.iter().sum();
        let n = self.files.len() as f64;
        start.iter_mut().for_each(|s| *s = if total > 0.0 { *s / total } else { 1.0 / n });
        let mut out = vec![0.0; self.files.len()];
        edges.iter().for_each(|&(from, _, _, w)| out[from] += w);
        let mut rank = start.clone();
        let mut flow = vec![0.0; edges.len()];
        for _ in 0..50 {
            let lost: f64 = (0..rank.len()).filter(|&f| out[f] == 0.0).map(|f| rank[f]).sum();
            let mut next: Vec<f64> =
                start.iter().map(|s| s * (1.0 - DAMPING + DAMPING * lost)).collect();
            for (e, &(from, to, _, w)) in edges.iter().enumerate() {
                flow[e] = DAMPING * rank[from] * w / out[from];
                next[to] += flow[e];
            }
            rank = next;
        }
        let mut into: BTreeMap<(usize, &str), f64> = BTreeMap::new();
        for (&(_, to, name, _), flow) in edges.iter().zip(flow) {
            *into.entry((to, name)).or_default() += flow;
        }
        // A file's rank shared among its definitions, and what reaches each by its name.
        let scores = (self.files.iter().enumerate())
            .map(|(f, file)| {
                let share = rank[f] / file.defs.len() as f64;
                let into = |name| into.get(&(f, name)).copied().unwrap_or(0.0);
                file.defs.iter().map(|d| bias(&d.name) * (share + into(d.name.as_str()))).collect()
            })
            .collect();
        (rank, scores)
    }
}

impl FileTags {
    /// The tags of `text`, or `None` where it does not parse.
    fn read(path: &str, text: &str, parser: &mut Parser, query: &Query) -> Option<FileTags> {
        let tree = parser.parse(text, None)?;
        let source = text.as_bytes();
        let lines: Vec<&str> = text.lines().collect();
        let captures = query.capture_names();
        let mut defs = Vec::new();
        let mut cursor = QueryCursor::new();
        let mut matches = cursor.matches(query, tree.root_node(), source);
        while let Some(m) = matches.next() {
            let node = |pick: &dyn Fn(&str) -> bool| {
                m.captures().iter().find(|c| pick(captures[c.index as usize])).map(|c| c.node)
            };
            let (Some(name), Some(def)) = (
                node(&|c| c == "name"),
                node(&|c| c.starts_with("definition.") && c != "definition.module"),
            ) else {
                continue;
            };
            let row = def.start_position().row;
            if let (Ok(name), Some(line)) = (name.utf8_text(source), lines.get(row)) {
                let text = clip(line.trim(), MAX_LINE).into_owned();
                defs.push(Def { name: name.to_string(), line: row + 1, text });
            }
        }
        // Some definitions match two patterns (a Rust method is also a function).
        defs.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
        defs.dedup_by(|a, b| (a.line, &a.name) == (b.line, &b.name));
        let mut uses: BTreeMap<String, usize> = BTreeMap::new();
        let mut walk = tree.walk();
        'walk: loop {
            let node = walk.node();
            if node.child_count() == 0
                && node.kind().ends_with("identifier")
                && let Ok(name) = node.utf8_text(source)
            {
                *uses.entry(name.to_string()).or_default() += 1;
            }
            if walk.goto_first_child() {
                continue;
            }
            while !walk.goto_next_sibling() {
                if !walk.goto_parent() {
                    break 'walk;
                }
            }
        }
        for def in &defs {
            if let Some(count) = uses.get_mut(&def.name) {
                *count = count.saturating_sub(1);
            }
        }
        uses.retain(|_, count| *count > 0);
        Some(FileTags { path: path.to_string(), defs, uses })
    }
}

/// A definition as the map shows it.
fn line(def: &Def) -> String {
    format!("{:>4}: {}\n", def.line, def.text)
}

/// The words of `text`, lower-cased, with identifiers taken apart (see [`parts`]).
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).flat_map(parts).collect()
}

/// The words an identifier is made of, lower-cased: `row_hash` and `RowHash` are `row` and
/// `hash`.
fn parts(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for piece in name.split('_').filter(|p| !p.is_empty()) {
        let (mut part, mut prev) = (String::new(), '_');
        for c in piece.chars() {
            if prev.is_lowercase() && c.is_uppercase() {
                parts.push(std::mem::take(&mut part));
            }
            part.extend(c.to_lowercase());
            prev = c;
        }
        parts.push(part);
    }
    parts
}

/// Whether `words` (see [`words`]) hold all the words of the identifier `name`.
fn mentions_all(words: &BTreeSet<String>, name: &str) -> bool {
    let parts = parts(name);
    !parts.is_empty() && parts.iter().all(|p| words.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (line, name) of each definition in a file of `path` holding `text`.
    fn defs(path: &str, text: &str) -> Vec<(usize, String)> {
        let map = RepoMap::new([(path, text)]);
        assert_eq!(map.files.len(), 1, "{path} parses");
        map.files[0].defs.iter().map(|d| (d.line, d.name.clone())).collect()
    }

    fn named(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
        pairs.iter().map(|&(line, name)| (line, name.to_string())).collect()
    }

    #[test]
    fn each_language_has_its_definitions_found() {
        let rust = "struct Point { x: i32 }\n\nimpl Point {\n    fn norm(&self) -> i32 {\n        \
                    self.x\n    }\n}\n\npub fn origin() -> Point {\n    Point { x: 0 }\n}\n\n\
                    trait Shape {}\nenum Kind { A }\n";
        assert_eq!(
            defs("src/point.rs", rust),
            named(&[(1, "Point"), (4, "norm"), (9, "origin"), (13, "Shape"), (14, "Kind")])
        );
        let python = "LIMIT = 3\n\nclass Stack:\n    def push(self, x):\n        pass\n\n\
                      def find(xs, target):\n    return 0\n";
        assert_eq!(
            defs("stack.py", python),
            named(&[(1, "LIMIT"), (3, "Stack"), (4, "push"), (7, "find")])
        );
        let javascript = "class Stack {\n  push(x) {}\n}\n\nfunction rpn(text) {}\n\n\
                          const lastN = (xs, n) => xs.slice(-n);\n";
        assert_eq!(
            defs("rpn.js", javascript),
            named(&[(1, "Stack"), (2, "push"), (5, "rpn"), (7, "lastN")])
        );
        let typescript = "interface Shape {\n  area(): number;\n}\n\ntype Id = string;\n\n\
                          export class Square implements Shape {\n  area() { return 1; }\n}\n\n\
                          export function unit(): Square {\n  return new Square();\n}\n";
        let found = named(&[
            (1, "Shape"),
            (2, "area"),
            (5, "Id"),
            (7, "Square"),
            (8, "area"),
            (11, "unit"),
        ]);
        assert_eq!(defs("shape.ts", typescript), found);
        assert_eq!(defs("shape.tsx", typescript), found);
        let go = "package geo\n\ntype Point struct {\n\tX int\n}\n\nfunc (p Point) Norm() int {\n\t\
                  return p.X\n}\n\nfunc Origin() Point {\n\treturn Point{}\n}\n";
        assert_eq!(defs("geo.go", go), named(&[(3, "Point"), (7, "Norm"), (11, "Origin")]));
    }

    #[test]
    fn files_not_mapped_are_left_out_without_error() {
        let large = "x = 1\n".repeat(MAX_FILE / 6 + 1);
        let broken = "def (((:\n\u{0}\u{7f}\"\"\"\n".repeat(100);
        let deep = format!("x = {}1{}\n", "(".repeat(20_000), ")".repeat(20_000));
        let map = RepoMap::new([
            ("notes.txt", "def not_code():"),
            ("large.py", large.as_str()),
            ("broken.py", broken.as_str()),
            ("deep.py", deep.as_str()),
        ]);
        let paths: Vec<&str> = map.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["broken.py", "deep.py"]);
        assert!(map.files[0].defs.is_empty());
    }

    #[test]
    fn identifiers_are_mentioned_by_their_words() {
        assert_eq!(parts("row_hash"), ["row", "hash"]);
        assert_eq!(parts("RowHash"), ["row", "hash"]);
        assert_eq!(parts("__init__"), ["init"]);
        let words = words("Verify the row's hash; `parse_duration(\"2h\")` fails.");
        assert!(mentions_all(&words, "row_hash") && mentions_all(&words, "ParseDuration"));
        assert!(!mentions_all(&words, "row_count") && !mentions_all(&words, "_"));
    }

    /// A task's repository: `util.py` defines `parse`, which three others use.
    fn fixture() -> RepoMap {
        RepoMap::new([
            ("app.py", "from util import parse\n\ndef main():\n    return parse('1')\n"),
            ("cli.py", "from util import parse\n\ndef run(args):\n    return parse(args)\n"),
            ("util.py", "def parse(text):\n    return int(text)\n\ndef unused():\n    pass\n"),
            ("lonely.py", "def alone():\n    return 1\n"),
            ("test_util.py", "from util import parse\n\ndef test_parse():\n    parse('2')\n"),
        ])
    }

    #[test]
    fn the_file_defining_a_name_the_task_mentions_ranks_first() {
        let map = fixture();
        assert_eq!(map.ranked("`parse` rejects negative numbers.")[0], "util.py");
        assert_eq!(map.ranked("`main` crashes on start.")[0], "app.py");
        let plain = map.ranked("");
        assert_eq!(plain[0], "util.py", "used by three files");
        let at = |path| plain.iter().position(|p| *p == path);
        assert!(at("util.py") < at("lonely.py"), "{plain:?}");
    }

    #[test]
    fn the_map_keeps_to_its_budget_and_is_the_same_each_time() {
        let map = fixture();
        let task = "`parse` rejects negative numbers.";
        let whole = map.render(task, &[], 10_000);
        assert!(whole.starts_with("util.py:\n   1: def parse(text):\n   4: def unused():\n"));
        assert!(whole.contains("lonely.py:\n   1: def alone():\n"), "{whole}");
        for budget in [0, 20, 40, 100, 200] {
            let cut = map.render(task, &[], budget);
            assert!(cut.len() <= budget, "{budget}: {cut}");
            assert_eq!(cut, map.render(task, &[], budget));
        }
        assert_eq!(map.render(task, &[], 40), "util.py:\n   1: def parse(text):\n");
        let skipped = map.render(task, &["util.py".into()], 10_000);
        assert!(!skipped.lines().any(|l| l == "util.py:"), "{skipped}");
        assert!(skipped.starts_with("app.py:\n"), "{skipped}");
    }
}

//! What can be typed at the prompt besides a task: slash commands, and `@path` mentions of
//! workspace files, with Tab completing both.

/// The slash commands, with what each does, for `/help` and completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/help", "these commands and the keys"),
    ("/cost", "tokens and cost of this session, from the ledger"),
    ("/diff", "uncommitted changes in the workspace"),
    ("/review", "holdability report of the steps committed in this session"),
    ("/undo", "take back the last step: its commit and the conversation since"),
    ("/compact", "summarise the older turns now, to free context"),
    ("/clear", "start a new conversation (the session file keeps the old one)"),
    ("/resume", "list this workspace's sessions; `/resume ID` says how to continue one"),
    ("/quit", "leave"),
];

/// A slash command typed at the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slash {
    Help,
    Cost,
    Diff,
    Review,
    Undo,
    Compact,
    Clear,
    Resume(Option<String>),
    Quit,
}

impl Slash {
    /// Reads `/name [argument]`; an unknown name is an error to show, never a task.
    pub fn parse(text: &str) -> Result<Slash, String> {
        let mut words = text.split_whitespace();
        let name = words.next().unwrap_or_default();
        let arg = words.next().map(str::to_string);
        Ok(match name {
            "/help" | "/?" => Slash::Help,
            "/cost" => Slash::Cost,
            "/diff" => Slash::Diff,
            "/review" => Slash::Review,
            "/undo" => Slash::Undo,
            "/compact" => Slash::Compact,
            "/clear" => Slash::Clear,
            "/resume" => Slash::Resume(arg),
            "/quit" | "/exit" => Slash::Quit,
            _ => return Err(format!("unknown command {name}; /help lists them")),
        })
    }
}

/// The completion of `word` (the word before the cursor): a slash command when it starts with
/// `/`, a workspace path after `@`. With several candidates, their longest common start.
pub fn complete(word: &str, files: &[String]) -> Option<String> {
    let candidates: Vec<&str> = if word.starts_with('/') {
        COMMANDS.iter().map(|(name, _)| *name).filter(|n| n.starts_with(word)).collect()
    } else if let Some(path) = word.strip_prefix('@') {
        files.iter().map(String::as_str).filter(|f| f.starts_with(path)).collect()
    } else {
        return None;
    };
    let first = candidates.first()?;
    let common = candidates.iter().fold(first.len(), |len, c| {
        first.bytes().zip(c.bytes()).take(len).take_while(|(a, b)| a == b).count()
    });
    let common = &first[..floor_char_boundary(first, common)];
    let done = if candidates.len() == 1 { " " } else { "" };
    Some(match word.starts_with('@') {
        true => format!("@{common}{done}"),
        false => format!("{common}{done}"),
    })
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The `@path` and `@path:FIRST-LAST` mentions in a task, in order, without repeats.
pub fn mentions(task: &str) -> Vec<(String, Option<(usize, usize)>)> {
    let mut found = Vec::new();
    for word in task.split_whitespace() {
        let Some(target) = word.strip_prefix('@') else { continue };
        let target = target.trim_end_matches([',', '.', ';', ':', ')', '?', '!']);
        let (path, range) = match target.rsplit_once(':') {
            Some((path, range)) => match range.split_once('-').map(|(a, b)| (a.parse(), b.parse()))
            {
                Some((Ok(a), Ok(b))) if a >= 1 && a <= b => (path, Some((a, b))),
                _ => (target, None),
            },
            None => (target, None),
        };
        let mention = (path.to_string(), range);
        if !path.is_empty() && !found.contains(&mention) {
            found.push(mention);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_unknown_ones_are_errors() {
        assert_eq!(Slash::parse("/cost"), Ok(Slash::Cost));
        assert_eq!(Slash::parse("/resume abc "), Ok(Slash::Resume(Some("abc".into()))));
        assert!(Slash::parse("/frobnicate").unwrap_err().contains("unknown command /frobnicate"));
    }

    #[test]
    fn tab_completes_commands_and_paths() {
        let files = vec!["greet.py".to_string(), "src/lib.rs".into(), "src/main.rs".into()];
        assert_eq!(complete("/cos", &files).as_deref(), Some("/cost "));
        assert_eq!(complete("/co", &files).as_deref(), Some("/co"), "/cost or /compact");
        assert_eq!(complete("/", &files).as_deref(), Some("/"));
        assert_eq!(complete("@gr", &files).as_deref(), Some("@greet.py "));
        assert_eq!(complete("@src/", &files).as_deref(), Some("@src/"));
        assert_eq!(complete("@src/m", &files).as_deref(), Some("@src/main.rs "));
        assert_eq!(complete("@zzz", &files), None);
        assert_eq!(complete("plain", &files), None);
    }

    #[test]
    fn mentions_with_and_without_ranges() {
        let found = mentions("look at @greet.py, then @src/lib.rs:10-40 and @greet.py again");
        assert_eq!(
            found,
            [("greet.py".to_string(), None), ("src/lib.rs".to_string(), Some((10, 40)))]
        );
        assert!(mentions("mail me@example.com and x @").is_empty());
    }
}

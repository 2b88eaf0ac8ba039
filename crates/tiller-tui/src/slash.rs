//! What can be typed at the prompt besides a task: slash commands, and `@path` mentions of
//! workspace files, with Tab completing both.

/// The slash commands, with what each does, for `/help` and completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/help", "these commands and the keys"),
    ("/model", "the model in use; `/model NAME` switches to a profile or a local model"),
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
    /// Show the model, or switch to the profile or local model named.
    Model(Option<String>),
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
            "/model" => Slash::Model(arg),
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

/// The completion of `word`, the word before the cursor, after `before`: a slash command when
/// it starts with `/`, a workspace path after `@`, a model (of `models`) after `/model`. With
/// several candidates, their longest common start.
pub fn complete(before: &str, word: &str, files: &[String], models: &[String]) -> Option<String> {
    let (names, prefix): (Vec<&str>, &str) = if before.trim() == "/model" {
        (models.iter().map(String::as_str).collect(), word)
    } else if word.starts_with('/') {
        (COMMANDS.iter().map(|(name, _)| *name).collect(), word)
    } else if let Some(path) = word.strip_prefix('@') {
        (files.iter().map(String::as_str).collect(), path)
    } else {
        return None;
    };
    let candidates: Vec<&str> = names.into_iter().filter(|n| n.starts_with(prefix)).collect();
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
        assert_eq!(Slash::parse("/model"), Ok(Slash::Model(None)));
        assert_eq!(Slash::parse("/model fast"), Ok(Slash::Model(Some("fast".into()))));
        assert!(Slash::parse("/frobnicate").unwrap_err().contains("unknown command /frobnicate"));
    }

    #[test]
    fn tab_completes_commands_and_paths() {
        let files = vec!["greet.py".to_string(), "src/lib.rs".into(), "src/main.rs".into()];
        let models = vec!["smollm2".to_string(), "gemma3-270m".into(), "gpt".into()];
        let complete = |before, word| complete(before, word, &files, &models);
        assert_eq!(complete("", "/cos").as_deref(), Some("/cost "));
        assert_eq!(complete("", "/co").as_deref(), Some("/co"), "/cost or /compact");
        assert_eq!(complete("", "/").as_deref(), Some("/"));
        assert_eq!(complete("", "/mo").as_deref(), Some("/model "));
        assert_eq!(complete("/model ", "sm").as_deref(), Some("smollm2 "));
        assert_eq!(complete("/model ", "g").as_deref(), Some("g"), "gemma3-270m or gpt");
        assert_eq!(complete("/model ", "x"), None);
        assert_eq!(complete("look at ", "@gr").as_deref(), Some("@greet.py "));
        assert_eq!(complete("", "@src/").as_deref(), Some("@src/"));
        assert_eq!(complete("", "@src/m").as_deref(), Some("@src/main.rs "));
        assert_eq!(complete("", "@zzz"), None);
        assert_eq!(complete("", "plain"), None);
        assert_eq!(complete("/cost ", "sm"), None);
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

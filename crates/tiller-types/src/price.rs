//! Prices per model, so that each model call can be recorded with its cost.
//!
//! The CLI reads the table from configuration, e.g. in TOML:
//!
//! ```toml
//! [prices."claude-sonnet-*"]
//! prompt = 3.0
//! cached = 0.3
//! completion = 15.0
//! ```

use std::collections::BTreeMap;

use crate::Usage;
use serde::{Deserialize, Serialize};

/// Prices per million tokens, in one currency (USD by convention).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens not served from a cache.
    pub prompt: f64,
    /// Prompt tokens served from a cache; the prompt price when not given.
    #[serde(default)]
    pub cached: Option<f64>,
    pub completion: f64,
}

impl Price {
    /// The cost of one call's usage. `usage.prompt_tokens` includes the cached ones.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let fresh = usage.prompt_tokens.saturating_sub(usage.cached_tokens) as f64;
        let cached = usage.cached_tokens as f64;
        let completion = usage.completion_tokens as f64;
        (fresh * self.prompt
            + cached * self.cached.unwrap_or(self.prompt)
            + completion * self.completion)
            / 1_000_000.0
    }
}

/// Model name or glob pattern (`*` matches any run of characters, `?` one character) to price.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    /// The price of `model`: an exact entry if there is one, else the matching pattern with the
    /// most literal characters (so `gpt-4o-mini*` wins over `gpt-4o*`).
    pub fn price(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.0.get(model) {
            return Some(p);
        }
        self.0
            .iter()
            .filter(|(pattern, _)| glob_match(pattern.as_bytes(), model.as_bytes()))
            .max_by_key(|(pattern, _)| pattern.chars().filter(|c| !matches!(c, '*' | '?')).count())
            .map(|(_, price)| price)
    }

    /// The cost of a call, priced by the model that answered, else the one requested; `None`
    /// when neither has a price. Local providers are free: record `Some(0.0)` for them.
    pub fn cost(&self, returned: &str, requested: &str, usage: &Usage) -> Option<f64> {
        self.price(returned).or_else(|| self.price(requested)).map(|p| p.cost(usage))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of bytes and `?` one byte.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more byte and retry from there.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match() {
        let m = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes());
        assert!(m("gpt-4o*", "gpt-4o-mini"));
        assert!(m("*sonnet*", "claude-sonnet-4"));
        assert!(m("a?c", "abc"));
        assert!(m("*", ""));
        assert!(!m("gpt-4o*", "gpt-4"));
        assert!(!m("a*b", "acbd"));
        assert!(m("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn most_specific_pattern_wins_and_cached_tokens_are_cheaper() {
        let table: PriceTable = serde_json::from_str(
            r#"{"gpt-4o*": {"prompt": 2.0, "completion": 8.0},
                "gpt-4o-mini*": {"prompt": 1.0, "cached": 0.5, "completion": 4.0}}"#,
        )
        .unwrap();
        let usage = Usage {
            prompt_tokens: 3_000_000,
            cached_tokens: 2_000_000,
            completion_tokens: 500_000,
        };
        // 1M fresh * 1.0 + 2M cached * 0.5 + 0.5M * 4.0
        assert_eq!(table.cost("gpt-4o-mini-2024", "x", &usage), Some(4.0));
        // No cached price: cached tokens cost the prompt price. 3M * 2.0 + 0.5M * 8.0
        assert_eq!(table.cost("unknown", "gpt-4o", &usage), Some(10.0));
        assert_eq!(table.cost("llama-3", "llama-3", &usage), None);
    }
}

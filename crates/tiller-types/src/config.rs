//! Configuration as read from `config.toml`: the active profile, profiles that each select a
//! provider, model and endpoint, and agent settings. Merging with flags and environment happens in
//! the CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PriceTable;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The profile used when none is named on the command line.
    pub profile: Option<String>,
    pub approval: Option<ApprovalPolicy>,
    /// Model turns per task before the agent gives up.
    pub max_steps: Option<u32>,
    /// Most changed lines per edit; larger edits are refused (default: 60 in the interactive
    /// front end, none in `exec`).
    pub step_budget: Option<usize>,
    /// Candidate edits sampled and checked by the project's tests at an edit step while the
    /// tests fail (default: 4 on the embedded engine where the project has a test command,
    /// else 1, which turns them off).
    pub candidates: Option<usize>,
    /// Commit each accepted edit in the interactive front end (default: true).
    pub commit_steps: Option<bool>,
    /// Where nothing can confine commands (sandbox tier C), run them unconfined without asking
    /// (default: false, every command is asked).
    pub dangerously_run_unconfined: Option<bool>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    #[serde(default)]
    pub egress: Egress,
    #[serde(default)]
    pub sandbox: SandboxSettings,
    /// Prices per million tokens by model name or glob, for the ledger's cost column.
    #[serde(default)]
    pub prices: PriceTable,
}

/// Where tiller's own connections may go, and what may leave the machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    /// Hosts tiller may connect to besides loopback: `host`, `host:port`, `*.domain` or a URL.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Refuse every endpoint that is not on loopback, even allowed ones, and names that resolve
    /// off the machine. Default: on when the active model is local.
    pub local_only: Option<bool>,
    /// The proxy for tiller's own connections. Proxy environment variables are ignored.
    pub proxy: Option<String>,
    /// Files never read for a model off this machine (globs; a glob without `/` matches a file
    /// name anywhere). Default: [`Egress::DEFAULT_DENY`].
    pub deny: Option<Vec<String>>,
}

impl Egress {
    pub const DEFAULT_DENY: [&str; 5] = [".env*", "*.pem", "*.key", "id_*", ".netrc"];
}

/// What the commands the agent runs get from tiller's environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Environment variables passed on to commands by name, besides the sandbox's minimal set
    /// (`PATH`, `HOME`, `LANG`, …). The model endpoint's API key variable is never passed on.
    #[serde(default)]
    pub env: Vec<String>,
}

/// Everything that selects and tunes one model endpoint. Every field is optional so that a
/// profile, the environment and flags can be layered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub provider: Option<ProviderKind>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// Name of the environment variable that holds the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Context window in tokens, when the endpoint does not say.
    pub context_length: Option<u64>,
    /// Output tokens per model call.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// Seconds to wait for a connection.
    pub connect_timeout_secs: Option<u64>,
    /// Seconds of silence from the endpoint (before or during a stream) before giving up.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds one model call may take in all, retries and their waits included.
    pub deadline_secs: Option<u64>,
    /// Retries after connect errors, 429 and 5xx.
    pub max_retries: Option<u32>,
    /// Offer an `answer` tool and require a tool call every turn (default: on for the embedded
    /// engine, whose small models rarely call tools unless made to).
    pub answer_tool: Option<bool>,
}

impl Profile {
    /// `other`'s fields where set, else `self`'s.
    pub fn overlay(self, other: &Profile) -> Profile {
        let o = other.clone();
        Profile {
            provider: o.provider.or(self.provider),
            model: o.model.or(self.model),
            base_url: o.base_url.or(self.base_url),
            api_key_env: o.api_key_env.or(self.api_key_env),
            context_length: o.context_length.or(self.context_length),
            max_tokens: o.max_tokens.or(self.max_tokens),
            temperature: o.temperature.or(self.temperature),
            connect_timeout_secs: o.connect_timeout_secs.or(self.connect_timeout_secs),
            idle_timeout_secs: o.idle_timeout_secs.or(self.idle_timeout_secs),
            deadline_secs: o.deadline_secs.or(self.deadline_secs),
            max_retries: o.max_retries.or(self.max_retries),
            answer_tool: o.answer_tool.or(self.answer_tool),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible Chat Completions endpoint.
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
    /// A GGUF model run in-process.
    Llama,
    /// A recorded conversation replayed from a file, for tests and demos.
    Scripted,
}

impl ProviderKind {
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Llama => "llama",
            ProviderKind::Scripted => "scripted",
        }
    }
}

/// When the agent asks a person before acting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Never ask: edits are applied, commands run, and what commands change in the files is
    /// kept (all of it recorded in the ledger).
    Never,
    /// Review every change to the files, whether an edit tool or a command made it; commands
    /// themselves run without asking, confined by the sandbox (where nothing can confine them,
    /// each one is asked).
    #[default]
    OnRequest,
    /// As `OnRequest`, and also ask before every command not known to be read-only.
    Untrusted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles_and_rejects_unknown_keys() {
        let cfg: Config = toml::from_str(
            r#"
            profile = "local"
            approval = "untrusted"
            [profiles.local]
            provider = "openai"
            base_url = "http://127.0.0.1:8080/v1"
            model = "qwen"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.approval, Some(ApprovalPolicy::Untrusted));
        assert_eq!(cfg.profiles["local"].provider, Some(ProviderKind::Openai));
        assert!(toml::from_str::<Config>("modle = 'x'").is_err());
        let cfg: Config = toml::from_str(
            r#"
            [egress]
            allow = ["api.openai.com"]
            local_only = false
            [sandbox]
            env = ["NPM_TOKEN"]
            [prices."gpt-4o*"]
            prompt = 2.5
            completion = 10.0
            "#,
        )
        .unwrap();
        assert_eq!(cfg.egress.allow, ["api.openai.com"]);
        assert_eq!(cfg.egress.local_only, Some(false));
        assert_eq!(cfg.sandbox.env, ["NPM_TOKEN"]);
        assert!(cfg.prices.price("gpt-4o-mini").is_some());
    }

    #[test]
    fn overlay_prefers_the_other_profile() {
        let base = Profile { model: Some("a".into()), max_tokens: Some(5), ..Default::default() };
        let top = Profile { model: Some("b".into()), ..Default::default() };
        let merged = base.overlay(&top);
        assert_eq!(merged.model.as_deref(), Some("b"));
        assert_eq!(merged.max_tokens, Some(5));
    }
}

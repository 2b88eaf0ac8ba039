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
    #[serde(default)]
    pub mcp: McpSettings,
}

/// The Model Context Protocol servers whose tools the agent may use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSettings {
    /// By name; the name prefixes the server's tools (`NAME__tool`).
    #[serde(default)]
    pub servers: BTreeMap<String, McpServer>,
}

/// One MCP server: a program started over stdio (`command`), or a streamable HTTP endpoint
/// (`url`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables set for the server, with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables passed on from tiller's environment by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_vars: Vec<String>,
    pub url: Option<String>,
    /// Headers sent to a `url` server, with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, String>,
    /// Headers sent to a `url` server, each with the value of the environment variable named.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_http_headers: BTreeMap<String, String>,
    /// The environment variable whose value a `url` server gets as a bearer token.
    pub bearer_token_env_var: Option<String>,
    /// Default: true.
    pub enabled: Option<bool>,
    /// Only these of its tools are offered (default: all).
    pub enabled_tools: Option<Vec<String>>,
    /// These of its tools are never offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_tools: Vec<String>,
    /// Seconds the server may take to start, and each call (default: 60).
    pub timeout_secs: Option<u64>,
    /// Whether the server (a stdio one) may use the network (default: false).
    pub network: Option<bool>,
}

impl McpServer {
    /// Whether the server's tool `name` is offered.
    pub fn offers(&self, name: &str) -> bool {
        self.enabled_tools.as_ref().is_none_or(|allowed| allowed.iter().any(|t| t == name))
            && !self.disabled_tools.iter().any(|t| t == name)
    }
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

/// What the commands the agent runs may have besides the sandbox's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Environment variables passed on to commands by name, besides the sandbox's minimal set
    /// (`PATH`, `HOME`, `LANG`, …). The model endpoint's API key variable is never passed on.
    #[serde(default)]
    pub env: Vec<String>,
    /// Let commands make unix sockets (a test server on a socket in the workspace, Python's
    /// forkserver). They can then connect to any socket file outside the hidden folders.
    #[serde(default)]
    pub unix_sockets: bool,
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
    /// Sampling seed of the embedded engine (default 0): from the same seed, the same run.
    pub seed: Option<u32>,
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
            seed: o.seed.or(self.seed),
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
            unix_sockets = true
            [prices."gpt-4o*"]
            prompt = 2.5
            completion = 10.0
            "#,
        )
        .unwrap();
        assert_eq!(cfg.egress.allow, ["api.openai.com"]);
        assert_eq!(cfg.egress.local_only, Some(false));
        assert_eq!(cfg.sandbox.env, ["NPM_TOKEN"]);
        assert!(cfg.sandbox.unix_sockets);
        assert!(cfg.prices.price("gpt-4o-mini").is_some());
    }

    #[test]
    fn parses_mcp_servers() {
        let cfg: Config = toml::from_str(
            r#"
            [mcp.servers.time]
            command = "uvx"
            args = ["mcp-server-time"]
            env = { TZ = "UTC" }
            disabled_tools = ["convert_time"]
            [mcp.servers.remote]
            url = "https://mcp.example.com/mcp"
            enabled = false
            bearer_token_env_var = "REMOTE_TOKEN"
            http_headers = { X-Team = "core" }
            env_http_headers = { X-Key = "REMOTE_KEY" }
            "#,
        )
        .unwrap();
        let time = &cfg.mcp.servers["time"];
        assert_eq!(time.args, ["mcp-server-time"]);
        assert!(time.offers("get_current_time") && !time.offers("convert_time"));
        let remote = &cfg.mcp.servers["remote"];
        assert_eq!(remote.enabled, Some(false));
        assert_eq!(remote.bearer_token_env_var.as_deref(), Some("REMOTE_TOKEN"));
        assert_eq!(remote.http_headers["X-Team"], "core");
        assert_eq!(remote.env_http_headers["X-Key"], "REMOTE_KEY");
        assert!(toml::from_str::<Config>("[mcp.servers.x]\ncomand = 'a'").is_err());
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

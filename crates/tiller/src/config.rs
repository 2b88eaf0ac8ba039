//! Settling the configuration: the config file's profile, overlaid by environment and flags,
//! then turned into a provider.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tiller_model::{
    Anthropic, EgressPolicy, EndpointConfig, OpenAi, Provider, Reach, Scripted, reach,
};
use tiller_types::{
    ApprovalPolicy, Config, Egress, McpSettings, PriceTable, Profile, ProviderKind, SandboxSettings,
};

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::paths;

/// The settings in force for one command.
#[derive(Debug)]
pub struct Settings {
    pub profile: Profile,
    pub approval: Option<ApprovalPolicy>,
    pub max_steps: Option<u32>,
    pub egress: Egress,
    pub prices: PriceTable,
    pub step_budget: Option<usize>,
    pub candidates: Option<usize>,
    pub commit_steps: Option<bool>,
    pub sandbox: SandboxSettings,
    pub mcp: McpSettings,
    /// The config file these came from (it need not exist).
    pub config_path: PathBuf,
    /// Run commands unconfined without asking where nothing can confine them (tier C).
    pub dangerously_run_unconfined: bool,
}

/// The model a command talks to.
pub struct Model {
    pub provider: Box<dyn Provider>,
    /// Requests leave this machine.
    pub remote: bool,
}

impl Settings {
    /// The files withheld from a remote model.
    pub fn deny(&self) -> Vec<String> {
        self.egress
            .deny
            .clone()
            .unwrap_or_else(|| Egress::DEFAULT_DENY.iter().map(|s| s.to_string()).collect())
    }

    /// The environment variable the model endpoint's API key is read from, if the provider
    /// takes one.
    pub fn api_key_var(&self) -> Option<&str> {
        let profile = &self.profile;
        match profile.provider.unwrap_or(ProviderKind::Llama) {
            ProviderKind::Llama | ProviderKind::Scripted => profile.api_key_env.as_deref(),
            kind => Some(profile.api_key_env.as_deref().unwrap_or(default_key_var(kind))),
        }
    }
}

/// The API key variable a provider reads when none is named.
fn default_key_var(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        _ => "OPENAI_API_KEY",
    }
}

/// Reads the config file (if any) and applies the profile, environment and flags, in that order.
pub fn settle(args: &ModelArgs) -> Result<Settings, CommandError> {
    let path = args.config.clone().unwrap_or_else(paths::config_file);
    let config = read_config(&path, args.config.is_some())?;
    let name = args.profile.clone().or(config.profile.clone());
    let base = match &name {
        Some(n) => config.profiles.get(n).cloned().ok_or_else(|| {
            CommandError::new(Kind::Config, format!("no profile `{n}` in {}", path.display()))
                .with_hint(format!("profiles there: {}", names(&config)))
        })?,
        None => Profile::default(),
    };
    let flags = Profile {
        provider: args.provider,
        model: args.model.clone(),
        base_url: args.base_url.clone(),
        api_key_env: args.api_key_env.clone(),
        seed: args.seed,
        ..Profile::default()
    };
    Ok(Settings {
        profile: base.overlay(&flags),
        approval: args.approval.or(config.approval),
        max_steps: config.max_steps,
        egress: config.egress,
        prices: config.prices,
        step_budget: config.step_budget,
        candidates: args.candidates.map(usize::from).or(config.candidates),
        commit_steps: config.commit_steps,
        sandbox: config.sandbox,
        mcp: config.mcp,
        config_path: path,
        dangerously_run_unconfined: args.dangerously_run_unconfined
            || config.dangerously_run_unconfined.unwrap_or(false),
    })
}

/// The settings `/model NAME` switches to: the config's profile NAME, else the installed local
/// model NAME on the embedded engine. The flags that chose the model at the start no longer
/// apply; everything else does.
pub fn settle_named(args: &ModelArgs, name: &str) -> Result<Settings, CommandError> {
    let args = ModelArgs {
        profile: None,
        provider: None,
        model: None,
        base_url: None,
        api_key_env: None,
        ..args.clone()
    };
    if profile_names(&args).iter().any(|p| p == name) {
        return settle(&ModelArgs { profile: Some(name.into()), ..args });
    }
    let mut settings = settle(&args)?;
    let model = Some(name.to_string());
    settings.profile = Profile { provider: Some(ProviderKind::Llama), model, ..Profile::default() };
    Ok(settings)
}

/// The names of the config file's profiles; none where it cannot be read.
pub fn profile_names(args: &ModelArgs) -> Vec<String> {
    let path = args.config.clone().unwrap_or_else(paths::config_file);
    read_config(&path, false).map(|c| c.profiles.into_keys().collect()).unwrap_or_default()
}

fn names(config: &Config) -> String {
    let list: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

pub fn read_config(path: &Path, required: bool) -> Result<Config, CommandError> {
    let text = match tiller_types::file::read_text_bounded(path, 1 << 20) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config::default());
        }
        Err(e) => {
            return Err(CommandError::new(Kind::Config, format!("{}: {e}", path.display())));
        }
    };
    toml::from_str(&text).map_err(|e| {
        CommandError::new(Kind::Config, format!("{}: {}", path.display(), e.message()))
            .with_hint("see docs/config.md for the format")
    })
}

/// The model the settings select, with the egress policy applied to its endpoint.
pub fn model(settings: &Settings) -> Result<Model, CommandError> {
    let profile = &settings.profile;
    // With nothing configured, tiller runs its default local model in-process.
    let kind = profile.provider.unwrap_or(ProviderKind::Llama);
    let model = || {
        profile.model.clone().ok_or_else(|| {
            CommandError::new(Kind::Config, format!("the {} provider needs a model", kind.name()))
                .with_hint("pass --model NAME")
        })
    };
    let local = |provider| Ok(Model { provider, remote: false });
    let endpoint = |name| endpoint(profile, &settings.egress, name, kind);
    let (provider, remote): (Box<dyn Provider>, bool) = match kind {
        ProviderKind::Scripted => return local(Box::new(Scripted::load(Path::new(&model()?))?)),
        ProviderKind::Llama => return local(crate::engine::load(profile)?),
        ProviderKind::Openai => {
            let (config, remote) = endpoint(model()?)?;
            (Box::new(OpenAi::new(config)?), remote)
        }
        ProviderKind::Anthropic => {
            let (config, remote) = endpoint(model()?)?;
            (Box::new(Anthropic::new(config)?), remote)
        }
    };
    Ok(Model { provider, remote })
}

/// The endpoint settings, and whether the endpoint is off this machine.
pub fn endpoint(
    profile: &Profile,
    egress: &Egress,
    model: String,
    kind: ProviderKind,
) -> Result<(EndpointConfig, bool), CommandError> {
    let default_url = match kind {
        ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        _ => "https://api.openai.com/v1",
    };
    let default_key = default_key_var(kind);
    let base_url = profile.base_url.clone().unwrap_or_else(|| default_url.into());
    let key_env = profile.api_key_env.clone();
    let api_key = match &key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            CommandError::new(Kind::Config, format!("the API key variable {var} is not set"))
                .with_hint(format!("export {var}=..., or name another with --api-key-env"))
        })?),
        None => std::env::var(default_key).ok().filter(|_| profile.base_url.is_none()),
    };
    let loopback = reach(&base_url)? == Reach::Loopback;
    // Local servers often run small contexts; assuming a large one would keep compaction from
    // ever firing. Remote defaults follow the vendors' current windows.
    let default_context = match kind {
        ProviderKind::Anthropic => 200_000,
        _ if loopback => 8_192,
        _ => 128_000,
    };
    let config = EndpointConfig {
        base_url,
        model,
        api_key,
        context_length: profile.context_length.unwrap_or(default_context),
        connect_timeout: Duration::from_secs(profile.connect_timeout_secs.unwrap_or(10)),
        idle_timeout: Duration::from_secs(profile.idle_timeout_secs.unwrap_or(120)),
        deadline: Duration::from_secs(profile.deadline_secs.unwrap_or(1200)),
        max_retries: profile.max_retries.unwrap_or(4),
        egress: egress_policy(egress, loopback),
    };
    Ok((config, !loopback))
}

/// The egress policy for connections to a site on loopback or not.
pub fn egress_policy(egress: &Egress, loopback: bool) -> EgressPolicy {
    EgressPolicy {
        // A local model keeps everything on the machine unless the user says otherwise.
        local_only: egress.local_only.unwrap_or(loopback),
        allow: egress.allow.clone(),
        proxy: egress.proxy.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "profile = 'p'\napproval = 'untrusted'\n[profiles.p]\nprovider = 'openai'\nmodel = 'a'\ncontext_length = 4096\n").unwrap();
        let args =
            ModelArgs { config: Some(file.clone()), model: Some("b".into()), ..Default::default() };
        let s = settle(&args).unwrap();
        assert_eq!(s.profile.provider, Some(ProviderKind::Openai));
        assert_eq!(s.profile.model.as_deref(), Some("b"));
        assert_eq!(s.profile.context_length, Some(4096));
        assert_eq!(s.approval, Some(ApprovalPolicy::Untrusted));
        let args =
            ModelArgs { config: Some(file), profile: Some("q".into()), ..Default::default() };
        let err = settle(&args).unwrap_err();
        assert_eq!(err.kind, Kind::Config);
        assert_eq!(err.hint.as_deref(), Some("profiles there: p"));
    }
}

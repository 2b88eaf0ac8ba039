//! Settling the configuration: the config file's profile, overlaid by environment and flags,
//! then turned into a provider.

use std::path::Path;
use std::time::Duration;

use tiller_model::{Anthropic, EndpointConfig, OpenAi, Provider, Scripted};
use tiller_types::{ApprovalPolicy, Config, Profile, ProviderKind};

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::paths;

/// The settings in force for one command.
#[derive(Debug)]
pub struct Settings {
    pub profile: Profile,
    pub approval: Option<ApprovalPolicy>,
    pub max_steps: Option<u32>,
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
        ..Profile::default()
    };
    Ok(Settings {
        profile: base.overlay(&flags),
        approval: args.approval.or(config.approval),
        max_steps: config.max_steps,
    })
}

fn names(config: &Config) -> String {
    let list: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

fn read_config(path: &Path, required: bool) -> Result<Config, CommandError> {
    let text = match std::fs::read_to_string(path) {
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

/// The provider a profile selects.
pub fn provider(profile: &Profile) -> Result<Box<dyn Provider>, CommandError> {
    // With nothing configured, tiller runs its default local model in-process.
    let kind = profile.provider.unwrap_or(ProviderKind::Llama);
    let model = || {
        profile.model.clone().ok_or_else(|| {
            CommandError::new(Kind::Config, format!("the {} provider needs a model", kind.name()))
                .with_hint("pass --model NAME")
        })
    };
    match kind {
        ProviderKind::Scripted => Ok(Box::new(Scripted::load(Path::new(&model()?))?)),
        ProviderKind::Openai => Ok(Box::new(OpenAi::new(endpoint(profile, model()?, kind)?)?)),
        ProviderKind::Anthropic => {
            Ok(Box::new(Anthropic::new(endpoint(profile, model()?, kind)?)?))
        }
        ProviderKind::Llama => crate::engine::load(profile),
    }
}

fn endpoint(
    profile: &Profile,
    model: String,
    kind: ProviderKind,
) -> Result<EndpointConfig, CommandError> {
    let (default_url, default_key) = match kind {
        ProviderKind::Anthropic => ("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
        _ => ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    };
    let base_url = profile.base_url.clone().unwrap_or_else(|| default_url.into());
    let key_env = profile.api_key_env.clone();
    let api_key = match &key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            CommandError::new(Kind::Config, format!("the API key variable {var} is not set"))
                .with_hint(format!("export {var}=..., or name another with --api-key-env"))
        })?),
        None => std::env::var(default_key).ok().filter(|_| profile.base_url.is_none()),
    };
    // Local servers often run small contexts; assuming a large one would keep compaction from
    // ever firing. Remote defaults follow the vendors' current windows.
    let default_context = match kind {
        ProviderKind::Anthropic => 200_000,
        _ if is_loopback(&base_url) => 8_192,
        _ => 128_000,
    };
    Ok(EndpointConfig {
        base_url,
        model,
        api_key,
        context_length: profile.context_length.unwrap_or(default_context),
        connect_timeout: Duration::from_secs(profile.connect_timeout_secs.unwrap_or(10)),
        idle_timeout: Duration::from_secs(profile.idle_timeout_secs.unwrap_or(120)),
        max_retries: profile.max_retries.unwrap_or(4),
    })
}

fn is_loopback(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || url.contains("://[::1]")
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

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:8080/v1"));
        assert!(is_loopback("http://localhost/v1"));
        assert!(is_loopback("http://[::1]:11434/v1"));
        assert!(!is_loopback("https://api.openai.com/v1"));
        assert!(!is_loopback("http://localhost.evil.example/v1"));
    }
}

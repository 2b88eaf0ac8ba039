//! `tiller models`: the models the engine can run (the models folder, then Ollama's store), or
//! with `--provider openai` the endpoint's models; `pull` gets one into the models folder.

use clap::{Args, Subcommand};
use tiller_model::OpenAi;
use tiller_types::ProviderKind;

use crate::cli::ModelArgs;
use crate::command_error::CommandError;
use crate::config::{self, Settings};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<ModelsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download a GGUF model into the models folder, to run as `--model NAME`: from Hugging Face
    /// (hf:ORG/REPO picks the Q4_K_M file when there are several; HF_ENDPOINT names another
    /// hub) or from a URL. An interrupted download resumes; the file must match its sha256.
    Pull {
        /// hf:ORG/REPO, hf:ORG/REPO/FILE.gguf, or an http(s) URL of a .gguf file.
        source: String,
        /// The sha256 the file must have, in hex (for a hub file, the hub's by default).
        #[arg(long)]
        sha256: Option<String>,
    },
}

pub fn run(model: &ModelArgs, args: &ModelsArgs) -> Result<(), CommandError> {
    let settings = config::settle(model)?;
    match &args.command {
        Some(ModelsCommand::Pull { source, sha256 }) => pull(&settings, source, sha256.clone()),
        None if settings.profile.provider == Some(ProviderKind::Openai) => {
            endpoint_models(&settings, args.json)
        }
        None => crate::engine::list(model, args.json),
    }
}

/// The models an OpenAI-compatible endpoint serves.
fn endpoint_models(settings: &Settings, json: bool) -> Result<(), CommandError> {
    let profile = &settings.profile;
    let model = profile.model.clone().unwrap_or_default();
    let (endpoint, _) = config::endpoint(profile, &settings.egress, model, ProviderKind::Openai)?;
    for id in OpenAi::new(endpoint)?.models()? {
        if json {
            outln!("{}", serde_json::json!({ "id": id }));
        } else {
            outln!("{id}");
        }
    }
    Ok(())
}

#[cfg(feature = "llama")]
fn pull(settings: &Settings, source: &str, sha256: Option<String>) -> Result<(), CommandError> {
    use std::io::IsTerminal;

    use tiller_llama::LlamaError;
    use tiller_llama::pull::{self, DEFAULT_HUB, Source};
    use tiller_model::{Fetcher, Reach, reach};

    use crate::command_error::Kind;

    let source = Source::parse(source).map_err(|e| CommandError::new(Kind::User, e.to_string()))?;
    let from_hub = matches!(source, Source::Hub { .. });
    let failed = |e: LlamaError| match e {
        LlamaError::Fetch(e) => fetch_error(e, from_hub),
        LlamaError::Pull(_) => CommandError::new(Kind::User, e.to_string()),
        e => CommandError::new(Kind::Model, e.to_string()),
    };
    let hub = std::env::var("HF_ENDPOINT").ok().filter(|v| !v.is_empty());
    let hub = hub.unwrap_or_else(|| DEFAULT_HUB.into());
    let site = match &source {
        Source::Hub { .. } => hub.as_str(),
        Source::Url(url) => url.as_str(),
    };
    let loopback = reach(site)? == Reach::Loopback;
    let fetcher = Fetcher::new(site, config::egress_policy(&settings.egress, loopback))
        .map_err(|e| fetch_error(e, from_hub))?;
    let dir = crate::paths::models_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| CommandError::new(Kind::Environment, format!("{}: {e}", dir.display())))?;
    let plan = pull::plan(&fetcher, &hub, &source, &dir, sha256).map_err(failed)?;
    let dest = &plan.download.dest;
    if dest.exists() {
        eprintln!("{} is already in {}", plan.name, dest.display());
        outln!("{}", plan.name);
        return Ok(());
    }
    let bar = std::io::stderr().is_terminal();
    let mut progress = |have: u64, total: Option<u64>| {
        if bar {
            eprint!("\r{}", progress_line(&plan.name, have, total));
        }
    };
    let result = fetcher.download(&plan.download, &mut progress);
    if bar {
        eprintln!();
    }
    let sha = result.map_err(|e| fetch_error(e, from_hub))?;
    match plan.checksum_from {
        Some(from) => eprintln!("sha256 {sha} matches {from}"),
        None => eprintln!("sha256 {sha} (not checked: pass --sha256 to check it)"),
    }
    eprintln!("pulled {} into {}; run it with --model {}", plan.name, dest.display(), plan.name);
    outln!("{}", plan.name);
    Ok(())
}

#[cfg(not(feature = "llama"))]
fn pull(_: &Settings, _: &str, _: Option<String>) -> Result<(), CommandError> {
    Err(crate::engine::missing())
}

/// A failed fetch, with what to do about it.
#[cfg(feature = "llama")]
fn fetch_error(e: tiller_model::ModelError, from_hub: bool) -> CommandError {
    use tiller_model::ModelError;
    let hint = match &e {
        ModelError::Config(_) if from_hub => Some(
            "Hugging Face serves files from its CDN: put `allow = [\"huggingface.co\", \
             \"*.huggingface.co\", \"*.hf.co\"]` under [egress] in config.toml",
        ),
        ModelError::Connect { .. } | ModelError::Truncated { .. } | ModelError::Timeout { .. } => {
            Some("run the same command again to resume the download")
        }
        _ => None,
    };
    let err = CommandError::from(e);
    match hint {
        Some(hint) => err.with_hint(hint),
        None => err,
    }
}

/// `name  42% 1.1/2.6 GiB`, or the bytes alone when the size is not known.
#[cfg(feature = "llama")]
fn progress_line(name: &str, have: u64, total: Option<u64>) -> String {
    let gib = |bytes: u64| bytes as f64 / f64::from(1 << 30);
    match total.filter(|t| *t > 0) {
        Some(total) => {
            let percent = have.saturating_mul(100) / total;
            format!("{name} {percent:>3}% {:.2}/{:.2} GiB", gib(have), gib(total))
        }
        None => format!("{name} {:.2} GiB", gib(have)),
    }
}

//! `tiller mcp list|add|remove`: the MCP servers in the config file, and the servers of a
//! session (docs/mcp.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use tiller_mcp::{Launch, McpServers};
use tiller_sandbox::Sandbox;
use tiller_types::{Config, McpServer};

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::config::{self, Settings};
use crate::out::Stdout;

#[derive(Subcommand, Debug)]
pub enum McpCommand {
    /// Start each enabled server and show its state and tools.
    List {
        /// One JSON object per server and line.
        #[arg(long)]
        json: bool,
    },
    /// Add a server to the config file: `tiller mcp add NAME -- COMMAND ARGS…` for one run
    /// over stdio, `tiller mcp add NAME --url URL` for a streamable HTTP one.
    Add {
        name: String,
        #[arg(long, conflicts_with = "command")]
        url: Option<String>,
        /// A variable set for the server (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// A variable passed on from tiller's environment by name (repeatable).
        #[arg(long = "env-var", value_name = "NAME")]
        env_vars: Vec<String>,
        /// Let the server use the network.
        #[arg(long)]
        network: bool,
        /// Seconds it may take to start, and each call.
        #[arg(long)]
        timeout_secs: Option<u64>,
        #[arg(last = true, required_unless_present = "url")]
        command: Vec<String>,
    },
    /// Remove a server from the config file.
    Remove { name: String },
}

/// The servers of a session in `root`, confined by the session's `sandbox`; their tools may
/// not take a name in `reserved`.
pub fn servers(
    settings: &Settings,
    sandbox: &Arc<Sandbox>,
    root: &Path,
    reserved: Vec<String>,
) -> Result<McpServers, CommandError> {
    let key = settings.api_key_var();
    let mut entries = settings.mcp.servers.clone();
    // The model endpoint's key is never passed on, as for commands.
    for entry in entries.values_mut() {
        entry.env_vars.retain(|name| Some(name.as_str()) != key);
    }
    let launch = Launch {
        sandbox: Some(Arc::clone(sandbox)),
        allow_unconfined: settings.dangerously_run_unconfined,
        workspace: root.to_path_buf(),
        // A server's URL is an endpoint as any other: loopback, or on the allow-list.
        egress: config::egress_policy(&settings.egress, false),
    };
    McpServers::new(&entries, launch, reserved)
        .map_err(|e| CommandError::new(Kind::Internal, e.to_string()))
}

pub fn run(model_args: &ModelArgs, command: McpCommand) -> Result<(), CommandError> {
    let settings = config::settle(model_args)?;
    match command {
        McpCommand::List { json } => list(&settings, &model_args.workspace_dir()?, json),
        McpCommand::Add { name, url, env, env_vars, network, timeout_secs, command } => {
            let env = env
                .iter()
                .map(|pair| {
                    let (key, value) = pair.split_once('=').ok_or_else(|| {
                        CommandError::new(Kind::User, format!("--env {pair}: not KEY=VALUE"))
                    })?;
                    Ok((key.to_string(), value.to_string()))
                })
                .collect::<Result<BTreeMap<_, _>, CommandError>>()?;
            let (program, args) = match command.split_first() {
                Some((program, args)) => (Some(program.clone()), args.to_vec()),
                None => (None, Vec::new()),
            };
            let entry = McpServer {
                command: program,
                args,
                env,
                env_vars,
                url,
                network: network.then_some(true),
                timeout_secs,
                ..McpServer::default()
            };
            add(&settings.config_path, &name, entry)?;
            eprintln!("tiller mcp: added `{name}` to {}", settings.config_path.display());
            Ok(())
        }
        McpCommand::Remove { name } => {
            remove(&settings.config_path, &name)?;
            eprintln!("tiller mcp: removed `{name}` from {}", settings.config_path.display());
            Ok(())
        }
    }
}

fn list(settings: &Settings, root: &Path, json: bool) -> Result<(), CommandError> {
    let internal = |e: std::io::Error| CommandError::new(Kind::Internal, e.to_string());
    let sandbox = Arc::new(super::sandbox::for_workspace(root, false, settings)?);
    let reserved = tiller_tools::Registry::default().names();
    let servers = servers(settings, &sandbox, root, reserved)?;
    let mut out = Stdout;
    if settings.mcp.servers.is_empty() {
        eprintln!("tiller mcp: no servers in {}", settings.config_path.display());
    }
    for server in servers.status() {
        let line = if json {
            let tools: Vec<_> = server
                .tools
                .iter()
                .map(|t| {
                    serde_json::json!({"name": t.name, "description": t.description, "offered": t.offered})
                })
                .collect();
            serde_json::json!({"name": server.name, "transport": server.transport,
                "state": server.state, "tools": tools})
            .to_string()
        } else {
            let mut text = format!("{}  {}  {}", server.name, server.transport, server.state);
            for tool in &server.tools {
                let first = tool.description.lines().next().unwrap_or_default();
                let off = if tool.offered { "" } else { " (not offered)" };
                text.push_str(&format!(
                    "\n  {}{off}  {}",
                    tool.name,
                    tiller_types::text::clip(first, 80)
                ));
            }
            text
        };
        writeln!(out, "{line}").map_err(internal)?;
    }
    Ok(())
}

/// Whether `name` may name a server: letters, digits, `-` and `_`, without `__` (which
/// separates it from the tool's name).
fn check_name(name: &str) -> Result<(), CommandError> {
    let fits = !name.is_empty()
        && !name.contains("__")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fits {
        return Ok(());
    }
    Err(CommandError::new(Kind::User, format!("`{name}` cannot name a server"))
        .with_hint("use letters, digits, `-` and `_`, without `__`"))
}

/// Appends `[mcp.servers.NAME]` to the config file, the rest of it kept as it is.
fn add(path: &Path, name: &str, entry: McpServer) -> Result<(), CommandError> {
    check_name(name)?;
    let text = read(path)?;
    let config = parse(path, &text)?;
    if config.mcp.servers.contains_key(name) {
        return Err(CommandError::new(
            Kind::User,
            format!("{} has a server `{name}` already", path.display()),
        )
        .with_hint(format!("tiller mcp remove {name} first")));
    }
    // Written whole from the top, so that a table inside (`env`) gets its full name.
    let table =
        BTreeMap::from([("mcp", BTreeMap::from([("servers", BTreeMap::from([(name, entry)]))]))]);
    let table = toml::to_string(&table)
        .map_err(|e| CommandError::new(Kind::Internal, format!("cannot write the entry: {e}")))?;
    let sep = if text.is_empty() || text.ends_with("\n\n") {
        ""
    } else if text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    write(path, &format!("{text}{sep}{table}"))
}

/// Removes the `[mcp.servers.NAME]` table (and its sub-tables) from the config file, the rest of
/// it kept as it is.
fn remove(path: &Path, name: &str) -> Result<(), CommandError> {
    let text = read(path)?;
    if !parse(path, &text)?.mcp.servers.contains_key(name) {
        return Err(CommandError::new(
            Kind::User,
            format!("{} has no server `{name}`", path.display()),
        ));
    }
    let heads = [format!("mcp.servers.{name}"), format!("mcp.servers.\"{name}\"")];
    let mut inside = false;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|line| {
            let line = line.trim();
            if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let head = head.trim();
                inside = heads.iter().any(|h| {
                    head == h || head.strip_prefix(h.as_str()).is_some_and(|r| r.starts_with('.'))
                });
            }
            !inside
        })
        .collect();
    // The blank line `add` put before the table goes with it.
    let kept = match kept.trim_end_matches('\n') {
        "" => String::new(),
        text => format!("{text}\n"),
    };
    if parse(path, &kept)?.mcp.servers.contains_key(name) {
        return Err(CommandError::new(
            Kind::User,
            format!(
                "`{name}` is not written as a [mcp.servers.{name}] table in {}",
                path.display()
            ),
        )
        .with_hint("edit the file by hand"));
    }
    write(path, &kept)
}

fn read(path: &Path) -> Result<String, CommandError> {
    match tiller_types::file::read_text_bounded(path, 1 << 20) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(CommandError::new(Kind::Config, format!("{}: {e}", path.display()))),
    }
}

fn parse(path: &Path, text: &str) -> Result<Config, CommandError> {
    toml::from_str(text).map_err(|e| {
        CommandError::new(Kind::Config, format!("{}: {}", path.display(), e.message()))
            .with_hint("see docs/config.md for the format")
    })
}

/// Writes the file whole or not at all: a temporary file beside it, renamed over it.
fn write(path: &Path, text: &str) -> Result<(), CommandError> {
    let fail = |e: std::io::Error| {
        CommandError::new(Kind::Config, format!("cannot write {}: {e}", path.display()))
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(fail)?;
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_keep_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let before = "# mine\napproval = \"untrusted\"\n\n[mcp.servers.keep]\ncommand = \"k\"\n";
        std::fs::write(&path, before).unwrap();
        let entry = McpServer {
            command: Some("npx".into()),
            args: vec!["-y".into(), "server".into()],
            env: [("TZ".to_string(), "UTC".to_string())].into(),
            ..McpServer::default()
        };
        add(&path, "new", entry.clone()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(before), "{text}");
        let config = parse(&path, &text).unwrap();
        assert_eq!(config.mcp.servers["new"], entry);
        let again = add(&path, "new", entry).unwrap_err();
        assert!(again.message.contains("has a server `new` already"), "{}", again.message);
        remove(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert!(remove(&path, "new").is_err());
        assert!(check_name("a__b").is_err() && check_name("").is_err());
    }

    #[test]
    fn a_broken_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "approval = [").unwrap();
        let err = add(&path, "x", McpServer::default()).unwrap_err();
        assert_eq!(err.kind, Kind::Config);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "approval = [");
    }
}

//! The `tiller` command.

#[macro_use]
mod out;

mod approve;
mod cli;
mod command_error;
mod commands;
mod config;
mod engine;
mod paths;
mod render;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The sandbox helper (`tiller __sandbox …`) must start fast and confine itself before
    // anything else runs.
    if let Some(code) = tiller_sandbox::helper_main() {
        return code;
    }
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => err.report(),
    }
}

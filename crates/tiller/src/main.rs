//! The `tiller` command.

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
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => err.report(),
    }
}

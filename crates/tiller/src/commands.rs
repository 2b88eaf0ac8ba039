//! One module per subcommand; this file dispatches.

mod bench;
mod exec;
pub mod ledger;
mod review;
mod sessions;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::command_error::CommandError;

pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Exec(args) => exec::exec(&cli.model, &args, None),
        Command::Resume(args) => exec::resume(&cli.model, &args),
        Command::Sessions { json } => sessions::list(json),
        Command::Ledger(args) => ledger::run(&args),
        Command::Review(args) => review::run(&cli.model, &args),
        Command::Models { json } => crate::engine::list(json),
        Command::Bench { command } => bench::run(&cli.model, command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tiller", &mut std::io::stdout());
            Ok(())
        }
    }
}

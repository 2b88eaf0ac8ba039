//! One module per subcommand; this file dispatches.

mod acp;
mod bench;
mod doctor;
pub mod eval;
mod exec;
mod interactive;
pub mod ledger;
mod loops;
pub mod mcp;
pub mod models;
pub mod probe;
mod review;
pub mod sandbox;
mod session;
mod sessions;
mod undo;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::command_error::CommandError;

pub fn run(cli: Cli) -> Result<(), CommandError> {
    let Some(command) = cli.command else {
        let resume = (cli.continue_session || cli.resume.is_some()).then_some(cli.resume);
        return interactive::run(&cli.model, cli.network, resume);
    };
    match command {
        Command::Exec(args) => exec::exec(&cli.model, &args, None),
        Command::Acp(args) => acp::run(&cli.model, &args),
        Command::Resume(args) => exec::resume(&cli.model, &args),
        Command::Sessions { json } => sessions::list(json),
        Command::Ledger(args) => ledger::run(&args),
        Command::Review(args) => review::run(&cli.model, &args),
        Command::Models(args) => models::run(&cli.model, &args),
        Command::Bench { command } => bench::run(&cli.model, command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tiller", &mut crate::out::Stdout);
            Ok(())
        }
        Command::Doctor { json } => doctor::run(json),
        Command::Sandbox(args) => sandbox::run(&cli.model, &args),
        Command::Mcp { command } => mcp::run(&cli.model, command),
        Command::Undo => undo::run(&cli.model),
        Command::Probe { command } => probe::run(&cli.model, &command),
        Command::Eval(args) => eval::run(&cli.model, &args),
        Command::Project(args) => loops::project(&cli.model, &args),
        Command::Repro(args) => loops::repro(&cli.model, &args),
        Command::Fix(args) => loops::fix(&cli.model, &args),
        Command::Sweep(args) => loops::sweep(&cli.model, &args),
        Command::Perf(args) => loops::perf(&cli.model, &args),
    }
}

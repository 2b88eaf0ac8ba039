//! `tiller project`, `repro`, `fix`, `sweep` and `perf`: the verified loops of `tiller-loops`
//! on a headless session. Progress and each step go to stderr, the verdict to stdout; a
//! verdict against the model's work exits with `Kind::Task`.

use tiller_agent::{AcceptAll, Approver};
use tiller_loops::{
    Conclusion, Loop, LoopError, PROJECT_FILE, PerfOptions, ProjectCommands, SweepOptions, Verifier,
};
use tiller_types::ApprovalPolicy;

use crate::approve::TerminalApprover;
use crate::cli::{FixArgs, LoopArgs, ModelArgs, PerfArgs, ProjectArgs, ReproArgs, SweepArgs};
use crate::command_error::{CommandError, Kind};
use crate::commands::session::{self, Session, Start};
use crate::render::Progress;

pub fn project(model_args: &ModelArgs, args: &ProjectArgs) -> Result<(), CommandError> {
    let root = model_args.workspace_dir()?;
    let (commands, origin) = ProjectCommands::load(&root)?;
    if args.save {
        commands.save(&root)?;
        eprintln!("wrote {}", root.join(PROJECT_FILE).display());
    }
    let fields = [
        ("test", Some(&commands.test)),
        ("test_one", commands.test_one.as_ref()),
        ("build", commands.build.as_ref()),
        ("bench", commands.bench.as_ref()),
    ];
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = (fields.iter())
            .filter_map(|(field, command)| {
                let value = serde_json::json!({ "command": (*command)?, "from": origin[field] });
                Some((field.to_string(), value))
            })
            .collect();
        outln!("{}", serde_json::Value::Object(object));
        return Ok(());
    }
    for (field, command) in fields {
        match command {
            Some(command) => outln!("{field:<9} {command}  ({})", origin[field]),
            None => outln!("{field:<9} -  (set it in {PROJECT_FILE})"),
        }
    }
    Ok(())
}

pub fn repro(model_args: &ModelArgs, args: &ReproArgs) -> Result<(), CommandError> {
    match run(model_args, &args.common, |lp| tiller_loops::repro(lp, &args.bug))? {
        Conclusion::Accepted(r) => {
            outln!(
                "accepted: {} ({}) committed as {}",
                r.tests.join(", "),
                r.files.join(", "),
                r.commit
            );
            Ok(())
        }
        Conclusion::Rejected(why) => {
            Err(rejected("test", &why, "describe the bug more precisely, or raise --attempts"))
        }
    }
}

pub fn fix(model_args: &ModelArgs, args: &FixArgs) -> Result<(), CommandError> {
    match run(model_args, &args.common, |lp| tiller_loops::fix(lp, args.test.as_deref()))? {
        Conclusion::Accepted(f) => {
            outln!(
                "fixed: {} passes and the suite is green; committed as {} ({})",
                f.test,
                f.commit,
                f.files.join(", ")
            );
            Ok(())
        }
        Conclusion::Rejected(why) => Err(rejected(
            "fix",
            &why,
            "raise --attempts, or fix it by hand: the failing test stays committed",
        )),
    }
}

pub fn sweep(model_args: &ModelArgs, args: &SweepArgs) -> Result<(), CommandError> {
    let options =
        SweepOptions { max: args.max, paths: args.paths.clone(), budget_tokens: args.budget };
    let done = run(model_args, &args.common, |lp| tiller_loops::sweep(lp, &options))?;
    for pair in &done.pairs {
        if args.json {
            let line = serde_json::json!({ "bug": pair.bug, "test": pair.test, "test_commit": pair.test_commit, "fix_commit": pair.fix_commit });
            outln!("{line}");
        } else {
            outln!(
                "{} {}  {}",
                pair.test_commit,
                pair.fix_commit,
                pair.bug.lines().next().unwrap_or_default()
            );
        }
    }
    eprintln!("{} test-and-fix pairs committed; stopped: {}", done.pairs.len(), done.stopped);
    if done.rejected {
        return Err(rejected(
            "sweep",
            &done.stopped,
            "the pairs listed are committed; run `tiller fix` to retry the last test",
        ));
    }
    Ok(())
}

pub fn perf(model_args: &ModelArgs, args: &PerfArgs) -> Result<(), CommandError> {
    let root = model_args.workspace_dir()?;
    let bench = match &args.bench {
        Some(bench) => bench.clone(),
        None => ProjectCommands::load(&root)?.0.bench.ok_or_else(|| {
            CommandError::new(Kind::User, "no benchmark command")
                .with_hint(format!("pass --bench \"COMMAND\", or set bench in {PROJECT_FILE}"))
        })?,
    };
    let options = PerfOptions { bench, runs: args.runs as usize, profile: !args.no_profile };
    match run(model_args, &args.common, |lp| tiller_loops::perf(lp, &options))? {
        Conclusion::Accepted(sped) => {
            outln!(
                "kept: {}; committed as {} ({})",
                sped.confirmation.summary(),
                sped.commit,
                sped.files.join(", ")
            );
            Ok(())
        }
        Conclusion::Rejected(why) => Err(rejected(
            "optimisation",
            &why,
            "try a larger workload or more --runs, or another idea",
        )),
    }
}

fn rejected(what: &str, why: &str, hint: &str) -> CommandError {
    CommandError::new(Kind::Task, format!("tiller rejected the {what}: {why}")).with_hint(hint)
}

/// Starts a session and runs `body` on a loop over it: edits reviewed (or accepted with
/// `--yes`), the project's commands in the session's sandbox, steps in the ledger.
fn run<T>(
    model_args: &ModelArgs,
    common: &LoopArgs,
    body: impl FnOnce(&mut Loop) -> Result<T, LoopError>,
) -> Result<T, CommandError> {
    let Session { mut agent, started, id, root, sandbox, .. } = session::start(Start {
        model_args,
        resume: None,
        network: common.network,
        max_steps: common.max_steps,
        // Edits go through review, where the fix loop refuses changes to the test.
        approval: ApprovalPolicy::OnRequest,
        step_budget: None,
        buffers: None,
        terminal: None,
    })?;
    let (commands, _) = ProjectCommands::load(&root)?;
    let mut progress = Progress::new(false);
    progress.event(&started);
    let (mut yes, mut ask) = (AcceptAll, TerminalApprover);
    let approver: &mut dyn Approver = if common.yes { &mut yes } else { &mut ask };
    let mut lp = Loop::new(&mut agent, approver, Verifier::new(&root, commands, Some(sandbox)));
    lp.ledger = Some(crate::commands::ledger::open()?);
    lp.session = id;
    lp.attempts = common.attempts;
    lp.events = Box::new(|event| progress.event(event));
    lp.on_step = Box::new(|step| eprintln!("tiller {step}"));
    let result = body(&mut lp);
    drop(lp);
    progress.finish(agent.usage());
    Ok(result?)
}

//! `tiller acp`: tiller as an Agent Client Protocol agent on stdin and stdout, for editors
//! (docs/editors.md). Each session an editor opens starts as `tiller exec`'s does, in the
//! folder the editor names, with the interactive front end's approval policy and step budget.

use std::path::Path;
use std::sync::Arc;

use tiller_acp::{Opened, Sessions};
use tiller_tools::{Buffers, Terminal};
use tiller_types::ApprovalPolicy;

use crate::cli::{AcpArgs, ModelArgs};
use crate::command_error::{CommandError, Kind};
use crate::commands::{exec, interactive, session};

pub fn run(model_args: &ModelArgs, args: &AcpArgs) -> Result<(), CommandError> {
    let sessions = Starter { model_args: model_args.clone(), network: args.network };
    tiller_acp::serve(sessions).map_err(|e| CommandError::new(Kind::Internal, e.to_string()))
}

/// Starts sessions with the command line's model settings.
struct Starter {
    model_args: ModelArgs,
    network: bool,
}

impl Sessions for Starter {
    fn open(
        &mut self,
        cwd: &Path,
        resume: Option<&str>,
        buffers: Option<Arc<dyn Buffers>>,
        terminal: Option<Arc<dyn Terminal>>,
    ) -> Result<Opened, String> {
        let model_args =
            ModelArgs { workspace: Some(cwd.to_path_buf()), ..self.model_args.clone() };
        let start = || {
            let resume = resume.map(|id| exec::session_file(&model_args, Some(id))).transpose()?;
            session::start(session::Start {
                model_args: &model_args,
                resume,
                network: self.network,
                max_steps: None,
                approval: ApprovalPolicy::OnRequest,
                step_budget: Some(interactive::STEP_BUDGET),
                buffers,
                terminal,
            })
        };
        let s = start().map_err(|e: CommandError| match e.hint {
            Some(hint) => format!("{} (hint: {hint})", e.message),
            None => e.message,
        })?;
        Ok(Opened { id: s.id, agent: s.agent })
    }
}

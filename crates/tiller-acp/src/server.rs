//! The connection: the methods tiller answers (`initialize`, `session/new`, `session/load`,
//! `session/prompt`, `session/cancel`) and the thread each session's agent works on.
//!
//! Handlers run on the connection's dispatch loop and must not wait on the editor, so a prompt
//! is handed to its session's thread and answered from a spawned task when the agent is done;
//! meanwhile the loop goes on taking cancellations and the answers to permission requests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use agent_client_protocol::v1::schema::{
    AgentCapabilities, CancelNotification, ClientCapabilities, ContentBlock,
    EmbeddedResourceResource, Implementation, InitializeRequest, InitializeResponse,
    LoadSessionRequest, LoadSessionResponse, NewSessionRequest, NewSessionResponse,
    PromptCapabilities, PromptRequest, PromptResponse, StopReason,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, Client, Error, Stdio};
use futures::channel::oneshot;
use tiller_agent::AgentError;
use tiller_tools::{Buffers, Terminal};
use tiller_types::Cancel;

use crate::client::Editor;
use crate::updates::Updates;
use crate::{AcpError, Opened, Sessions};

/// What a prompt ends with: the stop reason, or why the agent failed.
type PromptEnd = Result<StopReason, String>;

/// A prompt for a session's thread.
struct Job {
    prompt: String,
    done: oneshot::Sender<PromptEnd>,
}

/// A session whose agent runs on its own thread.
struct Running {
    jobs: mpsc::Sender<Job>,
    cancel: Cancel,
}

struct State {
    sessions: Box<dyn Sessions>,
    /// What the editor said it offers, at `initialize`.
    client: ClientCapabilities,
    running: HashMap<String, Running>,
}

type Shared = Arc<Mutex<State>>;

/// Serves the editor on stdin and stdout until it closes the connection.
pub fn serve(sessions: impl Sessions) -> Result<(), AcpError> {
    let state: Shared = Arc::new(Mutex::new(State {
        sessions: Box::new(sessions),
        client: ClientCapabilities::default(),
        running: HashMap::new(),
    }));
    let (s1, s2, s3, s4, s5) =
        (state.clone(), state.clone(), state.clone(), state.clone(), state.clone());
    let connection = Agent
        .v1()
        .name("tiller")
        .on_receive_request(
            async move |request: InitializeRequest, responder: Responder<InitializeResponse>, _| {
                lock(&s1)?.client = request.client_capabilities;
                // Embedded files are read as text (`prompt_text`); images and audio are not.
                let capabilities = AgentCapabilities::new()
                    .load_session(true)
                    .prompt_capabilities(PromptCapabilities::new().embedded_context(true));
                responder.respond(
                    InitializeResponse::new(request.protocol_version)
                        .agent_capabilities(capabilities)
                        .agent_info(Implementation::new("tiller", env!("CARGO_PKG_VERSION"))),
                )
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: NewSessionRequest,
                        responder: Responder<NewSessionResponse>,
                        cx| {
                match open(&s2, &cx, &request.cwd, None) {
                    Ok(id) => responder.respond(NewSessionResponse::new(id)),
                    Err(e) => responder.respond_with_error(e),
                }
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: LoadSessionRequest,
                        responder: Responder<LoadSessionResponse>,
                        cx| {
                let id = request.session_id.to_string();
                match open(&s3, &cx, &request.cwd, Some(&id)) {
                    Ok(_) => responder.respond(LoadSessionResponse::new()),
                    Err(e) => responder.respond_with_error(e),
                }
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: PromptRequest, responder: Responder<PromptResponse>, cx| {
                let id = request.session_id.to_string();
                let (done, outcome) = oneshot::channel();
                let job = Job { prompt: prompt_text(&request.prompt), done };
                let sent = lock(&s4)?.running.get(&id).map(|r| r.jobs.send(job).is_ok());
                if sent != Some(true) {
                    return responder.respond_with_error(no_session(&id));
                }
                cx.spawn(async move {
                    match outcome.await {
                        Ok(Ok(stop)) => responder.respond(PromptResponse::new(stop)),
                        Ok(Err(message)) => responder.respond_with_error(internal(message)),
                        Err(_) => responder.respond_with_error(internal("the session ended")),
                    }
                })
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |notification: CancelNotification, _| {
                if let Some(running) = lock(&s5)?.running.get(&notification.session_id.to_string())
                {
                    running.cancel.cancel();
                }
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(Stdio::new());
    futures::executor::block_on(connection).map_err(|e| AcpError::Protocol(e.to_string()))
}

/// Opens a session (new, or `resume`d and its history sent to the editor) and starts its
/// thread; returns its id.
fn open(
    state: &Shared,
    cx: &ConnectionTo<Client>,
    cwd: &Path,
    resume: Option<&str>,
) -> Result<String, Error> {
    if !cwd.is_absolute() {
        return Err(Error::invalid_params().data(format!("cwd {} is not absolute", cwd.display())));
    }
    if let Some(id) = resume.filter(|id| !is_session_id(id)) {
        return Err(Error::invalid_params().data(format!("{id:?} is not a tiller session id")));
    }
    let mut state = lock(state)?;
    let editor = Editor::new(cx.clone(), cwd, &state.client);
    if let Some(id) = resume {
        editor.name(id);
    }
    let fs = &state.client.fs;
    let buffers = (fs.read_text_file && fs.write_text_file)
        .then(|| Arc::new(editor.clone()) as Arc<dyn Buffers>);
    let terminal = state.client.terminal.then(|| Arc::new(editor.clone()) as Arc<dyn Terminal>);
    let Opened { id, agent } =
        state.sessions.open(cwd, resume, buffers, terminal).map_err(internal)?;
    editor.name(&id);
    if resume.is_some() {
        editor.send(Updates::new(cwd).replay(agent.history()));
    }
    let running = spawn(agent, editor, cwd);
    state.running.insert(id.clone(), running);
    Ok(id)
}

/// Starts the thread that runs `agent` on each prompt sent to it, its events going to `editor`.
fn spawn(mut agent: tiller_agent::Agent, editor: Editor, root: &Path) -> Running {
    let (jobs, inbox) = mpsc::channel::<Job>();
    let cancel = agent.cancel_handle();
    let root = root.to_path_buf();
    let stop = cancel.clone();
    // Not joined: it ends when the connection, and with it the sender, is gone.
    std::thread::spawn(move || {
        let mut approver = editor.clone();
        for job in inbox {
            let mut updates = Updates::new(&root);
            let result = agent.run(&job.prompt, &mut approver, &mut |event| {
                editor.send(updates.translate(event));
            });
            let outcome = match result {
                Ok(_) => Ok(StopReason::EndTurn),
                Err(_) if stop.is_cancelled() => Ok(StopReason::Cancelled),
                Err(AgentError::StepLimit(_)) => Ok(StopReason::MaxTurnRequests),
                Err(e) => Err(e.to_string()),
            };
            let _ = job.done.send(outcome);
        }
    });
    Running { jobs, cancel }
}

/// The prompt as text: its text blocks, and the files it embeds or links to.
fn prompt_text(blocks: &[ContentBlock]) -> String {
    let parts = blocks.iter().filter_map(|block| match block {
        ContentBlock::Text(t) => Some(t.text.clone()),
        ContentBlock::ResourceLink(link) => Some(format!("[{}]({})", link.name, link.uri)),
        ContentBlock::Resource(r) => match &r.resource {
            EmbeddedResourceResource::TextResourceContents(t) => {
                Some(format!("{}:\n```\n{}\n```", t.uri, t.text))
            }
            _ => None,
        },
        _ => None,
    });
    parts.collect::<Vec<_>>().join("\n\n")
}

/// Whether `id` can name a session file: no separators, no dots to climb with.
fn is_session_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn lock(state: &Shared) -> Result<std::sync::MutexGuard<'_, State>, Error> {
    state.lock().map_err(|_| internal("a session thread panicked"))
}

fn internal(message: impl Into<String>) -> Error {
    Error::internal_error().data(message.into())
}

fn no_session(id: &str) -> Error {
    Error::invalid_params().data(format!("no session {id} in this process"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_cannot_climb_out_of_the_sessions_folder() {
        assert!(is_session_id("20261204-182541-ab12"));
        assert!(!is_session_id("../../etc/passwd"));
        assert!(!is_session_id("a/b"));
        assert!(!is_session_id(""));
    }
}

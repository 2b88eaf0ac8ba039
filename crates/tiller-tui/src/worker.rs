//! The agent on a thread of its own. The front end sends it tasks; it sends back the agent's
//! events, and asks the front end (and waits) whenever the agent needs a person's decision.

use std::sync::mpsc::{self, Receiver, Sender};

use tiller_agent::{Agent, Approver, ModelSwitch, Review, Verdict};
use tiller_model::{Cancel, ModelInfo};
use tiller_types::{AgentEvent, ChangeSet, ToolCall};

/// What the agent thread tells the front end.
pub enum FromAgent {
    Event(AgentEvent),
    /// A change waits for review; the answer goes to `reply`.
    Review {
        call: ToolCall,
        changes: ChangeSet,
        reply: Sender<Review>,
    },
    /// A command waits for approval; the answer goes to `reply`.
    Approve {
        call: ToolCall,
        command: String,
        reply: Sender<Verdict>,
    },
    /// The task ended: the answer, or why it failed.
    Finished(Result<String, String>),
    /// The agent continues with another model; `remote` when it runs off this machine.
    Switched {
        info: ModelInfo,
        remote: bool,
    },
}

/// Makes the model a name stands for (a profile, or a local model), ready for the agent: the
/// CLI's config settling, passed in so that this crate holds no config code.
pub type LoadModel = Box<dyn Fn(&str) -> Result<ModelSwitch, String> + Send>;

/// What the front end asks of the agent thread.
pub enum Job {
    Task(String),
    /// Forget the conversation after its first N messages; `true` cuts the session file too.
    Rewind(usize, bool),
    /// Summarise the older turns now.
    Compact,
    /// Continue with the model this name stands for.
    Model(String),
}

/// The running agent thread.
pub struct Worker {
    pub tasks: Sender<Job>,
    pub cancel: Cancel,
}

/// Starts `agent` on its own thread; it runs each task sent to [`Worker::tasks`] in turn and
/// stops when that sender is dropped. `load` makes the models `/model` switches to.
pub fn spawn(mut agent: Agent, to_ui: Sender<FromAgent>, load: LoadModel) -> Worker {
    let (tasks, inbox) = mpsc::channel::<Job>();
    let cancel = agent.cancel_handle();
    // Not joined: on quit the process ends, and with it a task still running.
    std::thread::spawn(move || {
        let mut bridge = Bridge { to_ui: to_ui.clone() };
        for job in inbox {
            let task = match job {
                Job::Task(task) => task,
                Job::Compact => {
                    let ui = to_ui.clone();
                    let mut events = |e: &AgentEvent| {
                        let _ = ui.send(FromAgent::Event(e.clone()));
                    };
                    if let Err(e) = agent.compact_now(&mut events) {
                        let error = AgentEvent::Error { message: e.to_string() };
                        let _ = to_ui.send(FromAgent::Event(error));
                    }
                    continue;
                }
                Job::Model(name) => {
                    let message = match load(&name) {
                        Ok(switch) => {
                            let (info, remote) = (switch.provider.info(), switch.config.remote);
                            agent.switch_model(switch);
                            FromAgent::Switched { info, remote }
                        }
                        Err(message) => FromAgent::Event(AgentEvent::Error { message }),
                    };
                    let _ = to_ui.send(message);
                    continue;
                }
                Job::Rewind(keep, cut_log) => {
                    if let Err(e) = agent.rewind(keep, cut_log) {
                        let error = AgentEvent::Error { message: e.to_string() };
                        let _ = to_ui.send(FromAgent::Event(error));
                    }
                    continue;
                }
            };
            let ui = to_ui.clone();
            let result = agent.run(&task, &mut bridge, &mut |event| {
                let _ = ui.send(FromAgent::Event(event.clone()));
            });
            let _ = to_ui.send(FromAgent::Finished(result.map_err(|e| e.to_string())));
        }
    });
    Worker { tasks, cancel }
}

/// The agent's [`Approver`]: each question goes to the front end, and the agent waits for the
/// answer. If the front end is gone, the answer is no.
struct Bridge {
    to_ui: Sender<FromAgent>,
}

impl Bridge {
    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> FromAgent) -> Option<T> {
        let (reply, answer): (Sender<T>, Receiver<T>) = mpsc::channel();
        self.to_ui.send(make(reply)).ok()?;
        answer.recv().ok()
    }
}

impl Approver for Bridge {
    fn approve_command(&mut self, call: &ToolCall, command: &str) -> Verdict {
        let ask = |reply| FromAgent::Approve { call: call.clone(), command: command.into(), reply };
        self.ask(ask).unwrap_or(Verdict::Deny { feedback: None })
    }

    fn review_changes(&mut self, call: &ToolCall, changes: &ChangeSet) -> Review {
        let ask = |reply| FromAgent::Review { call: call.clone(), changes: changes.clone(), reply };
        self.ask(ask).unwrap_or_else(|| Review {
            selection: changes.reject_all(),
            feedback: None,
            edited: None,
        })
    }
}

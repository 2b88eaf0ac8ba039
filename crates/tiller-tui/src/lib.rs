//! tiller's interactive front end. The agent runs on its own thread ([`worker`]); this thread
//! keeps an [`App`] of what to show, prints finished lines into the terminal's normal scrollback
//! and redraws only a small live view under them (a ratatui inline viewport), each frame wrapped
//! in a synchronized update. No frame clears the screen, so nothing flickers, and all output
//! stays selectable and copyable.
//!
//! Every proposed edit is reviewed hunk by hunk before anything touches the working tree; an
//! accepted edit becomes a git commit with a message the model proposed and the user may edit.

mod app;
pub mod bench;
mod input;
mod review;
pub mod slash;
mod term;
pub mod undo;
mod view;
mod worker;
mod wrap;

pub use app::{App, Effect, Mode, Status};
pub use term::{Options, run};
pub use view::{HEIGHT, Theme, draw};
pub use worker::{FromAgent, LoadModel};

/// What a printed line is, which decides how it looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Dim,
    /// The user's own task.
    User,
    Accent,
    /// Unchanged lines around a hunk.
    Context,
    Added,
    Removed,
    Good,
    Bad,
}

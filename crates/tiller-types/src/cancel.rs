//! The flag a front end sets to stop what the agent is doing: a model call, or a command.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag shared between the caller and a running model call or command; set it to stop them.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Clears the flag so that the next call can run.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

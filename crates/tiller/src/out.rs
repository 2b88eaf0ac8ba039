//! stdout, which carries the data. Once its reader went away (`tiller sessions | head -1`), the
//! rest is dropped quietly, as Unix tools do, instead of a panic in `println!`; the command ends
//! with the exit code it has anyway.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when stdout's reader has gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints to stdout like `print!`; see the module doc for a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!($crate::out::Stdout, $($arg)*);
    }};
}

/// Prints a line to stdout like `println!`; see the module doc for a closed pipe.
macro_rules! outln {
    () => { outln!("") };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::out::Stdout, $($arg)*);
    }};
}

/// stdout as a writer that never returns an error: after a closed pipe it drops what it is
/// given; any other failure (a full disk) ends the process with a message and the internal
/// error code.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if CLOSED.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        // stdout flushes at each newline, so a closed pipe shows here rather than in the
        // silent flush at exit.
        std::io::stdout().write(buf).or_else(|e| closed(e).map(|()| buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::io::stdout().flush().or_else(closed)
    }
}

fn closed(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::Relaxed);
        return Ok(());
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(crate::command_error::Kind::Internal as i32);
}

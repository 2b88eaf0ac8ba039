//! Which folders of the tree changed, from inotify: one watch on each folder a walk visits.
//!
//! The kernel queues an event while the system call that causes it runs, so once a command
//! has exited every change it made is in the queue. An overflowed queue, or a watch that
//! cannot be added (the user's `max_user_watches`), makes the next look walk everything.

use std::collections::{BTreeSet, HashMap};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// The folders (workspace-relative, `.` the root) to look at again.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    /// Everything: the first look, an overflowed queue, a failed watch.
    pub all: bool,
    /// Folders whose own entries changed.
    pub dirs: BTreeSet<String>,
    /// Folders made, removed or moved, or whose ignore rules changed: walked whole.
    pub trees: BTreeSet<String>,
    /// Files looked at on their own (ones with several links).
    pub files: BTreeSet<String>,
}

impl Dirty {
    /// Whether the file at `path` lies where something changed.
    pub fn covers(&self, path: &str) -> bool {
        let parent = path.rsplit_once('/').map_or(".", |(dir, _)| dir);
        self.all
            || self.dirs.contains(parent)
            || self.files.contains(path)
            || self.trees.iter().any(|t| {
                t == "." || path.strip_prefix(t.as_str()).is_some_and(|r| r.starts_with('/'))
            })
    }
}

pub(super) struct Events {
    fd: OwnedFd,
    /// The folder each watch is on.
    dirs: HashMap<i32, String>,
}

impl Events {
    pub fn new() -> Option<Events> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok()?;
        Some(Events { fd, dirs: HashMap::new() })
    }

    /// Watches the folder at `abs`, known as `rel`; false if the kernel refused.
    pub fn watch(&mut self, abs: &Path, rel: String) -> bool {
        let flags = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MODIFY
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW
            | WatchFlags::EXCL_UNLINK;
        match inotify::add_watch(&self.fd, abs, flags) {
            Ok(wd) => {
                self.dirs.insert(wd, rel);
                true
            }
            // Removed since it was listed: its parent's event says so.
            Err(Errno::NOENT | Errno::NOTDIR) => true,
            Err(_) => false,
        }
    }

    /// Adds what the queued events say to `dirty`, emptying the queue.
    pub fn drain(&mut self, dirty: &mut Dirty) {
        let mut buf = [MaybeUninit::uninit(); 16 << 10];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    dirty.all = true;
                    return;
                }
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                dirty.all = true;
                continue;
            }
            if flags.contains(ReadFlags::IGNORED) {
                self.dirs.remove(&event.wd());
                continue;
            }
            let (Some(dir), Some(name)) = (self.dirs.get(&event.wd()), event.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy();
            if flags.contains(ReadFlags::ISDIR) {
                dirty.trees.insert(if dir == "." {
                    name.into_owned()
                } else {
                    format!("{dir}/{name}")
                });
            } else if name == ".gitignore" || name == ".ignore" {
                dirty.trees.insert(dir.clone());
            } else {
                dirty.dirs.insert(dir.clone());
            }
        }
    }
}

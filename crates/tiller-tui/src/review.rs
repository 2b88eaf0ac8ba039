//! Reviewing one proposed change, hunk by hunk: the decisions so far, the hunk shown as a diff
//! with context, the reviewer's own edits to a hunk, and the commit message and note for the
//! model that follow the last decision.

use std::sync::mpsc::Sender;

use tiller_agent::Review;
use tiller_types::{ChangeKind, ChangeSet, FileChange, Selection, ToolCall};

use crate::Tone;

/// Lines of unchanged context shown around a hunk.
const CONTEXT: usize = 3;

/// Where the review is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Deciding on item `n` of [`ReviewState::items`].
    Hunk(usize),
    /// Editing the commit message.
    Message,
    /// Writing an optional note for the model.
    Note,
}

pub struct ReviewState {
    pub call: ToolCall,
    pub changes: ChangeSet,
    reply: Sender<Review>,
    /// Every decision to make: (file, item within the file).
    items: Vec<(usize, usize)>,
    accepted: Vec<Vec<bool>>,
    edited: bool,
    pub stage: Stage,
    /// The commit message, as proposed and then edited.
    pub message: String,
    pub note: String,
}

impl ReviewState {
    pub fn new(call: ToolCall, changes: ChangeSet, reply: Sender<Review>) -> ReviewState {
        let items = (changes.files.iter().enumerate())
            .flat_map(|(f, file)| (0..file.items()).map(move |i| (f, i)))
            .collect();
        let accepted = changes.files.iter().map(|f| vec![false; f.items()]).collect();
        let message = proposed_message(&call, &changes);
        ReviewState {
            call,
            changes,
            reply,
            items,
            accepted,
            edited: false,
            stage: Stage::Hunk(0),
            message,
            note: String::new(),
        }
    }

    /// The item being decided: its position, the count, and the file it belongs to.
    pub fn current(&self) -> Option<(usize, usize, &FileChange)> {
        let Stage::Hunk(n) = self.stage else { return None };
        let (f, _) = self.items[n];
        Some((n + 1, self.items.len(), &self.changes.files[f]))
    }

    /// Decides the current item, and with `rest` every item after it too. Moves on to the
    /// message or the note when nothing is left to decide.
    pub fn decide(&mut self, accept: bool, rest: bool) {
        let Stage::Hunk(n) = self.stage else { return };
        let last = if rest { self.items.len() - 1 } else { n };
        for &(f, i) in &self.items[n..=last] {
            self.accepted[f][i] = accept;
        }
        self.stage = if last + 1 < self.items.len() {
            Stage::Hunk(last + 1)
        } else if self.accepts_anything() {
            Stage::Message
        } else {
            Stage::Note
        };
    }

    /// The text a reviewer edits for the current hunk: its added lines.
    pub fn hunk_text(&self) -> Option<String> {
        let Stage::Hunk(n) = self.stage else { return None };
        let (f, i) = self.items[n];
        Some(self.changes.files[f].hunks.get(i)?.added.concat())
    }

    /// Replaces the current hunk's added lines with `text` and accepts it.
    pub fn edit_hunk(&mut self, text: &str) {
        let Stage::Hunk(n) = self.stage else { return };
        let (f, i) = self.items[n];
        let file = &mut self.changes.files[f];
        let Some(hunk) = file.hunks.get_mut(i) else { return };
        hunk.added = text.split_inclusive('\n').map(str::to_string).collect();
        if file.kind == ChangeKind::Add {
            file.new = Some(text.to_string());
        }
        self.edited = true;
        self.decide(true, false);
    }

    /// After the message: a note is asked for only when something was rejected or edited.
    pub fn message_done(&mut self) -> bool {
        if self.accepted.iter().flatten().all(|&a| a) && !self.edited {
            return true;
        }
        self.stage = Stage::Note;
        false
    }

    fn accepts_anything(&self) -> bool {
        self.accepted.iter().flatten().any(|&a| a)
    }

    /// Sends the review to the agent; returns the commit message when anything was accepted.
    pub fn finish(self) -> Option<String> {
        let accepts = self.accepts_anything();
        let note = self.note.trim();
        let review = Review {
            selection: Selection(self.accepted),
            feedback: (!note.is_empty()).then(|| note.to_string()),
            edited: self.edited.then_some(self.changes),
        };
        // The agent may have stopped waiting (cancelled); then nothing is applied anyway.
        let _ = self.reply.send(review);
        accepts.then_some(self.message)
    }

    /// The current item as diff lines with context, under a header line.
    pub fn hunk_lines(&self) -> Vec<(Tone, String)> {
        let Stage::Hunk(n) = self.stage else { return Vec::new() };
        let (f, i) = self.items[n];
        let file = &self.changes.files[f];
        let (added, removed) =
            file.hunks.get(i).map_or((0, 0), |h| (h.added.len(), h.removed.len()));
        let what = match &file.kind {
            ChangeKind::Add => "new file".to_string(),
            ChangeKind::Delete => "delete".to_string(),
            ChangeKind::Move { to } => format!("move to {to}"),
            ChangeKind::Update => "update".to_string(),
        };
        let header = format!(
            "── {} · {what} · {}/{} · +{added} −{removed}",
            file.path,
            n + 1,
            self.items.len()
        );
        let mut out = vec![(Tone::Accent, header)];
        let Some(hunk) = file.hunks.get(i) else { return out };
        let old: Vec<&str> = file.old.as_deref().unwrap_or_default().lines().collect();
        let start = hunk.old_start.min(old.len());
        let end = (start + hunk.removed.len()).min(old.len());
        let context = |range: std::ops::Range<usize>| {
            old[range].iter().map(|l| (Tone::Dim, format!("  {l}"))).collect::<Vec<_>>()
        };
        out.extend(context(start.saturating_sub(CONTEXT)..start));
        let line = |tone, sign, l: &String| (tone, format!("{sign} {}", l.trim_end_matches('\n')));
        out.extend(hunk.removed.iter().map(|l| line(Tone::Removed, '-', l)));
        out.extend(hunk.added.iter().map(|l| line(Tone::Added, '+', l)));
        out.extend(context(end..(end + CONTEXT).min(old.len())));
        out
    }
}

/// The commit message the model proposed with the edit, else one naming the files.
fn proposed_message(call: &ToolCall, changes: &ChangeSet) -> String {
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
    match args["message"].as_str().map(str::trim) {
        Some(m) if !m.is_empty() => m.lines().next().unwrap_or(m).to_string(),
        _ => {
            let files: Vec<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
            format!("Edit {}", files.join(", "))
        }
    }
}

//! `tiller sessions`: what has been recorded.

use tiller_agent::list_sessions;

use crate::command_error::CommandError;
use crate::paths;

pub fn list(json: bool) -> Result<(), CommandError> {
    for s in list_sessions(&paths::sessions_dir()) {
        if s.missing_meta || s.skipped_lines > 0 {
            let what = match (s.missing_meta, s.skipped_lines) {
                (true, 0) => "no meta line".to_string(),
                (true, n) => format!("no meta line, {n} unreadable lines skipped"),
                (false, n) => format!("{n} unreadable lines skipped"),
            };
            eprintln!("note: {}: {what}", s.path.display());
        }
        if json {
            let row = serde_json::json!({
                "id": s.meta.id,
                "created": s.meta.created,
                "workspace": s.meta.workspace,
                "provider": s.meta.provider,
                "model": s.meta.model,
                "messages": s.messages.len(),
            });
            outln!("{row}");
        } else {
            outln!(
                "{}  {}  {}/{}  {} messages  {}",
                s.meta.id,
                s.meta.created,
                s.meta.provider,
                s.meta.model,
                s.messages.len(),
                s.meta.workspace
            );
        }
    }
    Ok(())
}

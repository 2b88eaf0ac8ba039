//! The system prompt: tiller's instructions plus the project's own AGENTS.md files.

use std::path::{Path, PathBuf};

const INSTRUCTIONS: &str = "\
You are tiller, a coding agent working in the user's project. Use the tools to read, search, \
edit and run commands. Paths are relative to the project root.
Work in small, verified steps: read before you edit, make the smallest change that does the \
job, and run the project's tests after changing code.
Edit files with apply_patch, or write_file for new files. What your commands change in the \
files (sed -i, scripts, formatters) counts as an edit too. The user may review every edit and \
reject it, in part or whole (a rejected change is undone); if so, read their feedback and adjust.
When the task is done, reply with a short summary of what you changed and how you checked it, \
without calling a tool.";

/// The instructions for a small model: one way to work, in few words.
const COMPACT_INSTRUCTIONS: &str = "\
You are tiller, fixing code in the user's project. Paths are relative to the project root.
1. Find the wrong line in the code shown, or read_file the file the failing test points to.
2. replace the wrong line: old is the line as it is, new is the corrected line.
3. Run the tests with shell.
4. When they pass, call answer with one sentence saying what you changed.";

/// The AGENTS.md files that apply to `workspace`, outermost first: from the project root (the
/// nearest ancestor holding `.git`, else the workspace itself) down to the workspace.
pub fn agents_files(workspace: &Path) -> Vec<PathBuf> {
    let root = project_root(workspace);
    let mut dirs: Vec<&Path> = workspace.ancestors().take_while(|d| d.starts_with(root)).collect();
    dirs.reverse();
    dirs.into_iter().map(|d| d.join("AGENTS.md")).filter(|f| f.is_file()).collect()
}

fn project_root(workspace: &Path) -> &Path {
    workspace.ancestors().find(|d| d.join(".git").exists()).unwrap_or(workspace)
}

/// The system prompt for a session in `workspace`.
pub fn system_prompt(workspace: &Path) -> String {
    prompt_with(INSTRUCTIONS, workspace)
}

/// The system prompt for a small model with a small context.
pub(crate) fn compact_system_prompt(workspace: &Path) -> String {
    prompt_with(COMPACT_INSTRUCTIONS, workspace)
}

fn prompt_with(instructions: &str, workspace: &Path) -> String {
    let mut prompt = instructions.to_string();
    let root = project_root(workspace);
    for file in agents_files(workspace) {
        // A pipe or device named AGENTS.md must not hang or flood the session.
        let Ok(text) = tiller_types::file::read_text_bounded(&file, 1 << 20) else {
            continue;
        };
        let name = file.strip_prefix(root).unwrap_or(&file).display();
        prompt.push_str(&format!("\n\n# Project instructions from {name}\n\n{}", text.trim_end()));
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_agents_files_from_root_down() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("sub/inner")).unwrap();
        std::fs::write(root.join("AGENTS.md"), "root rules\n").unwrap();
        std::fs::write(root.join("sub/AGENTS.md"), "sub rules\n").unwrap();
        let files = agents_files(&root.join("sub/inner"));
        assert_eq!(files, vec![root.join("AGENTS.md"), root.join("sub/AGENTS.md")]);
        let prompt = system_prompt(&root.join("sub"));
        let (r, s) = (prompt.find("root rules").unwrap(), prompt.find("sub rules").unwrap());
        assert!(r < s);
        assert!(prompt.contains("# Project instructions from sub/AGENTS.md\n\nsub rules"));
    }
}

//! `tiller doctor`: what this machine offers for confining commands, the tier in force, and
//! the exact fix for each missing part.

use tiller_sandbox::Detection;

use crate::command_error::CommandError;

pub fn run(json: bool) -> Result<(), CommandError> {
    let d = Detection::probe();
    if json {
        let row = serde_json::json!({
            "landlock_abi": d.landlock_abi,
            "seccomp": d.seccomp,
            "userns": d.userns.is_ok(),
            "userns_error": d.userns.as_ref().err(),
            "bwrap": d.bwrap,
            "tier": format!("{:?}", d.tier()),
            "summary": d.summary(),
            "warnings": d.warnings(),
            "fixes": d.fixes,
        });
        outln!("{row}");
        return Ok(());
    }
    let landlock = d.landlock_abi.map_or("not available".to_owned(), |abi| format!("ABI {abi}"));
    let seccomp = if d.seccomp { "available" } else { "not available" };
    let userns = match &d.userns {
        Ok(()) => "available".to_owned(),
        Err(e) => format!("not available: {e}"),
    };
    let bwrap = d.bwrap.as_ref().map_or("not installed".to_owned(), |p| p.display().to_string());
    outln!("Landlock         {landlock}");
    outln!("seccomp          {seccomp}");
    outln!("user namespaces  {userns}");
    outln!("bubblewrap       {bwrap}");
    outln!("in force         {}", d.summary());
    for warning in d.warnings() {
        outln!("warning: {warning}");
    }
    for fix in &d.fixes {
        outln!("fix: {fix}");
    }
    Ok(())
}

//! What this machine offers for confinement, which [`Tier`] that allows, and the exact fix for
//! each missing part.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Landlock ABI tier B needs: version 3 (Linux 6.2) is the first to control truncation, and
/// without namespaces Landlock is the only thing between a command and the user's files.
const MIN_LANDLOCK_TIER_B: u32 = 3;

/// How strongly commands can be confined here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// bubblewrap namespaces (read-only root, private network, PID namespace), with Landlock,
    /// seccomp and rlimits applied inside.
    A,
    /// Landlock, seccomp and rlimits only.
    B,
    /// Nothing: every command needs approval.
    C,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::A => "tier A (bubblewrap namespaces, Landlock, seccomp)",
            Tier::B => "tier B (Landlock and seccomp, no namespaces)",
            Tier::C => "tier C (no sandbox: every command needs approval)",
        })
    }
}

/// The result of probing the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The Landlock ABI version the kernel offers, if any.
    pub landlock_abi: Option<u32>,
    /// Whether seccomp filters can be installed.
    pub seccomp: bool,
    /// Whether bubblewrap could set up its namespaces, or what it (or `unshare`) said.
    pub userns: Result<(), String>,
    /// Where `bwrap` is, if installed.
    pub bwrap: Option<PathBuf>,
    /// Whether tiller runs as root.
    pub root: bool,
    /// Exact steps that would bring this machine to tier A.
    pub fixes: Vec<String>,
}

impl Detection {
    /// Probes the kernel and runs bubblewrap (or `unshare`) once to see whether user
    /// namespaces really work: sysctls alone miss container seccomp profiles and AppArmor.
    pub fn probe() -> Detection {
        let landlock_abi = landlock_abi();
        let seccomp = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
            .is_ok_and(|actions| actions.split_whitespace().any(|a| a == "errno"));
        let bwrap = find_program("bwrap");
        let userns = probe_userns(bwrap.as_deref());
        let read = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
        let mut fixes = Vec::new();
        if bwrap.is_none() {
            fixes.push(
                "install bubblewrap: `sudo apt install bubblewrap` (Debian, Ubuntu) or \
                 `sudo dnf install bubblewrap` (Fedora)"
                    .to_owned(),
            );
        }
        if userns.is_err() {
            fixes.push(userns_fix(read));
        }
        if landlock_abi.is_none() {
            fixes.push(
                "enable Landlock: Linux 5.13 or later (6.2 or later for tier B) with `landlock` \
                 in the `lsm=` kernel parameter"
                    .to_owned(),
            );
        }
        if !seccomp {
            fixes.push("use a kernel built with CONFIG_SECCOMP_FILTER".to_owned());
        }
        Detection {
            landlock_abi,
            seccomp,
            userns,
            bwrap,
            root: rustix::process::geteuid().is_root(),
            fixes,
        }
    }

    /// The strongest tier every needed part is here for.
    pub fn tier(&self) -> Tier {
        let landlock = self.landlock_abi.unwrap_or(0);
        if self.seccomp && landlock >= 1 && self.bwrap.is_some() && self.userns.is_ok() {
            Tier::A
        } else if self.seccomp && landlock >= MIN_LANDLOCK_TIER_B {
            Tier::B
        } else {
            Tier::C
        }
    }

    /// Why the tier is not A: one line per missing part.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.bwrap.is_none() {
            reasons.push("bubblewrap (bwrap) is not installed".to_owned());
        }
        if let Err(e) = &self.userns {
            reasons.push(format!("user namespaces are unavailable: {e}"));
        }
        match self.landlock_abi {
            None => reasons.push("Landlock is not enabled in this kernel".to_owned()),
            Some(abi) if abi < MIN_LANDLOCK_TIER_B && self.tier() != Tier::A => reasons.push(
                format!("Landlock ABI {abi} is too old for tier B (needs {MIN_LANDLOCK_TIER_B})"),
            ),
            Some(_) => {}
        }
        if !self.seccomp {
            reasons.push("seccomp filters are not available".to_owned());
        }
        reasons
    }

    /// What the tier in force leaves open.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        match self.tier() {
            Tier::A => {}
            Tier::B => warnings.push(
                "without namespaces, secret folders such as ~/.ssh and tiller's own data and \
                 config stay readable, .git stays writable (so a command can plant what git \
                 runs later), unix sockets, where allowed, reach every socket file (under /run, \
                 $XDG_RUNTIME_DIR, ~/.ssh), and a process that calls setsid can outlive the \
                 timeout"
                    .to_owned(),
            ),
            Tier::C => {
                warnings.push("commands run unconfined, so each one needs approval".to_owned())
            }
        }
        if self.root && self.tier() != Tier::C {
            warnings.push(
                "as root, the kernel does not apply the process limit (RLIMIT_NPROC): only the \
                 timeout stops a fork bomb"
                    .to_owned(),
            );
        }
        warnings
    }

    /// One line for the user: the tier, and why it is not A.
    pub fn summary(&self) -> String {
        let reasons = self.reasons();
        if reasons.is_empty() {
            self.tier().to_string()
        } else {
            format!("{}: {}", self.tier(), reasons.join("; "))
        }
    }
}

/// The kernel's Landlock ABI version, or `None` where Landlock is missing or disabled.
#[allow(unsafe_code)]
pub(crate) fn landlock_abi() -> Option<u32> {
    /// `LANDLOCK_CREATE_RULESET_VERSION` from `<linux/landlock.h>`.
    const VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, a size of 0 and the VERSION flag the kernel reads
    // no memory; it only returns the ABI version, or -1 with errno set.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0 as libc::size_t,
            VERSION,
        )
    };
    u32::try_from(version).ok().filter(|&v| v > 0)
}

/// `name` on the `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Runs the same namespaces tier A uses around `true`.
fn probe_userns(bwrap: Option<&Path>) -> Result<(), String> {
    let mut cmd = match bwrap {
        Some(bwrap) => {
            let mut cmd = Command::new(bwrap);
            cmd.args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"])
                .args(["--proc", "/proc", "--dev", "/dev", "true"]);
            cmd
        }
        None => {
            let Some(unshare) = find_program("unshare") else {
                return Err("not checked: neither bwrap nor unshare is installed".into());
            };
            let mut cmd = Command::new(unshare);
            cmd.args(["--user", "--map-root-user", "--net", "--pid", "--fork", "true"]);
            cmd
        }
    };
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().display()))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(if said.is_empty() { format!("the probe failed ({})", out.status) } else { said })
}

/// The fix for user namespaces that do not work, from the sysctls and container markers that
/// `read` finds.
fn userns_fix(read: impl Fn(&str) -> Option<String>) -> String {
    let is = |path: &str, value: &str| read(path).is_some_and(|v| v == value);
    if is("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1") {
        "allow user namespaces (Ubuntu's AppArmor restriction): \
         `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, and add that line to \
         /etc/sysctl.d/ to keep it"
            .to_owned()
    } else if is("/proc/sys/kernel/unprivileged_userns_clone", "0") {
        "allow user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1`".to_owned()
    } else if is("/proc/sys/user/max_user_namespaces", "0") {
        "allow user namespaces: `sudo sysctl -w user.max_user_namespaces=10000`".to_owned()
    } else if read("/.dockerenv").is_some() || read("/run/.containerenv").is_some() {
        "this container forbids namespaces: start it with `--security-opt seccomp=unconfined \
         --security-opt apparmor=unconfined`, or run tiller outside it"
            .to_owned()
    } else {
        "allow unprivileged user namespaces for bwrap (see its message above)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(landlock: Option<u32>, bwrap: bool, userns: bool) -> Detection {
        Detection {
            landlock_abi: landlock,
            seccomp: true,
            userns: if userns { Ok(()) } else { Err("denied".into()) },
            bwrap: bwrap.then(|| PathBuf::from("/usr/bin/bwrap")),
            root: false,
            fixes: Vec::new(),
        }
    }

    #[test]
    fn tiers_follow_the_parts_present() {
        assert_eq!(detection(Some(7), true, true).tier(), Tier::A);
        assert_eq!(detection(Some(1), true, true).tier(), Tier::A);
        assert_eq!(detection(Some(7), false, true).tier(), Tier::B);
        assert_eq!(detection(Some(3), true, false).tier(), Tier::B);
        assert_eq!(detection(Some(2), true, false).tier(), Tier::C);
        assert_eq!(detection(None, true, true).tier(), Tier::C);
        let no_seccomp = Detection { seccomp: false, ..detection(Some(7), true, true) };
        assert_eq!(no_seccomp.tier(), Tier::C);
    }

    #[test]
    fn summary_says_why_the_tier_is_not_a() {
        assert_eq!(
            detection(Some(7), true, true).summary(),
            "tier A (bubblewrap namespaces, Landlock, seccomp)"
        );
        assert!(detection(Some(7), true, true).warnings().is_empty());
        let b = detection(Some(7), true, false);
        assert_eq!(
            b.summary(),
            "tier B (Landlock and seccomp, no namespaces): user namespaces are unavailable: denied"
        );
        assert!(b.warnings()[0].contains("secret folders such as ~/.ssh"));
        let root = Detection { root: true, ..detection(Some(7), true, true) };
        assert!(
            root.warnings()[0].contains("as root, the kernel does not apply the process limit")
        );
        let c = detection(Some(2), false, false);
        assert!(c.summary().contains("bwrap) is not installed"), "{}", c.summary());
        assert!(c.summary().contains("Landlock ABI 2 is too old for tier B"), "{}", c.summary());
    }

    #[test]
    fn userns_fix_names_the_setting_that_blocks() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            userns_fix(|p: &str| pairs.iter().find(|(k, _)| *k == p).map(|(_, v)| v.to_string()))
        };
        assert!(
            with(&[("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")])
                .contains("kernel.apparmor_restrict_unprivileged_userns=0")
        );
        assert!(
            with(&[("/proc/sys/kernel/unprivileged_userns_clone", "0")])
                .contains("kernel.unprivileged_userns_clone=1")
        );
        assert!(
            with(&[("/proc/sys/user/max_user_namespaces", "0")])
                .contains("user.max_user_namespaces=10000")
        );
        assert!(with(&[("/.dockerenv", "")]).contains("--security-opt seccomp=unconfined"));
        assert!(with(&[]).contains("unprivileged user namespaces"));
    }

    #[test]
    fn probe_agrees_with_itself() {
        let d = Detection::probe();
        assert_eq!(d.landlock_abi, landlock_abi());
        // Every missing part comes with a fix, and tier A needs none.
        assert_eq!(d.tier() == Tier::A, d.fixes.is_empty(), "{d:?}");
    }
}

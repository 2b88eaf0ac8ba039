//! The seccomp filters. Each answers with an error number rather than killing the process, so
//! the program prints a clear message: "Address family not supported by protocol" for a
//! refused socket, "Function not implemented" for io_uring (which libraries take as "fall back
//! to plain system calls").
//!
//! Unix sockets are refused where they are made rather than where they connect: seccomp cannot
//! read the path `connect` and `sendto` are given, so a command that may make a unix socket may
//! reach every socket file it can see, including ones made after it started. A stream socket
//! pair is already connected and cannot be pointed anywhere else, so pipelines and programs
//! that talk to their own children keep working.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::SandboxError;

/// Marks a system call of the x32 ABI on x86_64. The filter's architecture check lets x32
/// calls through (they share the x86_64 audit value), so each rule is repeated for them.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// The bits of `socket`'s and `socketpair`'s type argument that hold the type (the kernel's
/// `SOCK_TYPE_MASK`).
const SOCK_TYPE_MASK: u64 = 0xf;

/// Refuses sockets that reach beyond the command: with `network` off every family but
/// `AF_UNIX` (so IPv4, IPv6, netlink, vsock, packet…), with it on still `AF_VSOCK`, which no
/// network namespace isolates; and unless `unix` allows them, new unix sockets and datagram
/// socket pairs (a datagram socket may send to any socket file, connected or not).
pub(crate) fn deny_sockets(network: bool, unix: bool) -> Result<(), SandboxError> {
    let other = if network {
        arg(0, SeccompCmpOp::Eq, libc::AF_VSOCK)?
    } else {
        arg(0, SeccompCmpOp::Ne, libc::AF_UNIX)?
    };
    let (mut socket, mut pair) = (vec![other.clone()], vec![other]);
    if !unix {
        socket.push(arg(0, SeccompCmpOp::Eq, libc::AF_UNIX)?);
        // The type argument also carries SOCK_NONBLOCK and SOCK_CLOEXEC.
        let kind = SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK);
        pair.push(arg(1, kind, libc::SOCK_DGRAM)?);
    }
    install(&[(libc::SYS_socket, socket), (libc::SYS_socketpair, pair)], libc::EAFNOSUPPORT)
}

/// Refuses io_uring, which can open sockets and files without the system calls the other
/// filter sees.
pub(crate) fn deny_io_uring() -> Result<(), SandboxError> {
    let rules = [libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register]
        .map(|nr| (nr, Vec::new()));
    install(&rules, libc::ENOSYS)
}

/// Refuses new user namespaces as container runtimes do: `unshare` and `clone` with
/// `CLONE_NEWUSER` fail with `EPERM`, and `clone3`, whose flags a filter cannot read, with
/// `ENOSYS` (so the C library falls back to `clone`).
pub(crate) fn deny_user_namespaces() -> Result<(), SandboxError> {
    let new_user = libc::CLONE_NEWUSER;
    let flagged = arg(0, SeccompCmpOp::MaskedEq(new_user as u64), new_user)?;
    let rules = [libc::SYS_unshare, libc::SYS_clone].map(|nr| (nr, vec![flagged.clone()]));
    install(&rules, libc::EPERM)?;
    install(&[(libc::SYS_clone3, Vec::new())], libc::ENOSYS)
}

/// A rule on argument `index`, compared as a 32-bit int.
fn arg(index: u8, op: SeccompCmpOp, value: libc::c_int) -> Result<SeccompRule, SandboxError> {
    // The kernel passes the int sign-extended only in the upper half, which Dword ignores.
    let value = u64::from(value as u32);
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        .and_then(|cond| SeccompRule::new(vec![cond]))
        .map_err(error)
}

/// Installs a filter that fails the given system calls (all calls when a rule list is empty,
/// else those any rule matches) with `errno`, and allows everything else.
fn install(rules: &[(i64, Vec<SeccompRule>)], errno: libc::c_int) -> Result<(), SandboxError> {
    let arch = std::env::consts::ARCH;
    let mut map = BTreeMap::new();
    for (nr, rule) in rules {
        map.insert(*nr, rule.clone());
        if arch == "x86_64" {
            map.insert(nr | X32_SYSCALL_BIT, rule.clone());
        }
    }
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(errno.unsigned_abs()),
        arch.try_into().map_err(error)?,
    )
    .map_err(error)?;
    let program: BpfProgram = filter.try_into().map_err(error)?;
    seccompiler::apply_filter(&program).map_err(error)
}

fn error(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp(e.to_string())
}

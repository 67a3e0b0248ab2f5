//! The seccomp filter every container runs under: deny by default (the call fails with `EPERM`),
//! allow the system calls ordinary programs make.
//!
//! The allow list is the set container users know from the common Docker-compatible default,
//! grouped here by what the calls do. Calls that reach past the container into the host kernel's
//! shared state are left out on purpose: mounting and namespaces (`mount`, `umount2`,
//! `pivot_root`, `unshare`, `setns`), tracing other processes (`ptrace`, `process_vm_*`), the
//! kernel keyring (`keyctl`, `add_key`, `request_key`), kernel code and power (`bpf`,
//! `init_module`, `kexec_load`, `reboot`), swap, clocks, accounting and quotas. Two calls are
//! allowed only with safe arguments: `clone` without namespace flags and `personality` with the
//! few personas programs actually ask for. `clone3` answers `ENOSYS`, so C libraries fall back to
//! the filtered `clone`.
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder, LinuxSeccompOperator,
    LinuxSyscall, LinuxSyscallBuilder,
};

/// `EPERM`: what a denied call returns.
pub const DENIED_ERRNO: u32 = 1;
/// `ENOSYS`: what `clone3` returns, so callers fall back to `clone`.
const ENOSYS: u32 = 38;

/// Files and directories: open, read, write, metadata, links, extended attributes.
const FILES: &[&str] = &[
    "access",
    "faccessat",
    "faccessat2",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "read",
    "readv",
    "pread64",
    "preadv",
    "preadv2",
    "write",
    "writev",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "lseek",
    "_llseek",
    "stat",
    "stat64",
    "lstat",
    "lstat64",
    "fstat",
    "fstat64",
    "fstatat64",
    "newfstatat",
    "statx",
    "statfs",
    "statfs64",
    "fstatfs",
    "fstatfs64",
    "truncate",
    "truncate64",
    "ftruncate",
    "ftruncate64",
    "fallocate",
    "fadvise64",
    "fadvise64_64",
    "readahead",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "flock",
    "fcntl",
    "fcntl64",
    "ioctl",
    "dup",
    "dup2",
    "dup3",
    "getcwd",
    "chdir",
    "fchdir",
    "mkdir",
    "mkdirat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "readlink",
    "readlinkat",
    "getdents",
    "getdents64",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "chown32",
    "fchown",
    "fchown32",
    "fchownat",
    "lchown",
    "lchown32",
    "umask",
    "utime",
    "utimes",
    "utimensat",
    "utimensat_time64",
    "futimesat",
    "mknod",
    "mknodat",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "copy_file_range",
    "sendfile",
    "sendfile64",
    "splice",
    "tee",
    "vmsplice",
    "name_to_handle_at",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "fanotify_mark",
    "memfd_create",
    "memfd_secret",
    "cachestat",
];

/// Memory: mappings, locking, protection keys.
const MEMORY: &[&str] = &[
    "brk",
    "mmap",
    "mmap2",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "mincore",
    "msync",
    "mlock",
    "mlock2",
    "mlockall",
    "munlock",
    "munlockall",
    "remap_file_pages",
    "membarrier",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "map_shadow_stack",
];

/// Processes and threads: exec, fork, wait, ids, limits, scheduling, robust futexes.
const PROCESSES: &[&str] = &[
    "execve",
    "execveat",
    "fork",
    "vfork",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "waitpid",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "setpgid",
    "getpgrp",
    "getsid",
    "setsid",
    "getuid",
    "getuid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getegid",
    "getegid32",
    "getresuid",
    "getresuid32",
    "getresgid",
    "getresgid32",
    "getgroups",
    "getgroups32",
    "setuid",
    "setuid32",
    "setgid",
    "setgid32",
    "setreuid",
    "setreuid32",
    "setregid",
    "setregid32",
    "setresuid",
    "setresuid32",
    "setresgid",
    "setresgid32",
    "setfsuid",
    "setfsuid32",
    "setfsgid",
    "setfsgid32",
    "setgroups",
    "setgroups32",
    "capget",
    "capset",
    "prctl",
    "getrlimit",
    "ugetrlimit",
    "setrlimit",
    "prlimit64",
    "getrusage",
    "getpriority",
    "setpriority",
    "ioprio_get",
    "ioprio_set",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getattr",
    "sched_setattr",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futex_wait",
    "futex_wake",
    "futex_requeue",
    "rseq",
    "get_thread_area",
    "set_thread_area",
    "getcpu",
    "getrandom",
    "uname",
    "sysinfo",
    "times",
    "seccomp",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    "process_mrelease",
    "restart_syscall",
];

/// Signals.
const SIGNALS: &[&str] = &[
    "kill",
    "tkill",
    "tgkill",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    "signalfd",
    "signalfd4",
    "pause",
];

/// Time: reading clocks, sleeping, timers (setting the clock is not here).
const TIME: &[&str] = &[
    "time",
    "gettimeofday",
    "clock_gettime",
    "clock_gettime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "nanosleep",
    "alarm",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
];

/// Waiting on many descriptors, event and pipe descriptors, asynchronous I/O.
const EVENTS: &[&str] = &[
    "poll",
    "ppoll",
    "ppoll_time64",
    "select",
    "_newselect",
    "pselect6",
    "pselect6_time64",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_wait",
    "epoll_wait_old",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "pipe",
    "pipe2",
    "io_setup",
    "io_destroy",
    "io_submit",
    "io_cancel",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
];

/// Sockets (the container shares the host network; binding low ports still needs its capability).
const NETWORK: &[&str] = &[
    "socket",
    "socketpair",
    "socketcall",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "shutdown",
    "send",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recv",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "recvmmsg_time64",
];

/// System V and POSIX inter-process communication (inside the container's IPC namespace).
const IPC: &[&str] = &[
    "ipc",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "semctl",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_notify",
    "mq_getsetattr",
];

/// Calls only the x86 family has.
const X86_ONLY: &[&str] = &["arch_prctl", "modify_ldt"];

/// Calls only the ARM family has.
const ARM_ONLY: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];

/// Namespace flags `clone` may not carry (`CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
/// NEWPID | NEWNET`): new namespaces are the container runtime's business, not the container's.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `personality` values allowed: the default (`PER_LINUX`), `PER_LINUX32`, `UNAME26`,
/// `PER_LINUX32 | UNAME26`, and `0xffffffff` (the query).
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

/// Every system call name the profile allows without looking at arguments, on this architecture.
pub fn allowed() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = [FILES, MEMORY, PROCESSES, SIGNALS, TIME, EVENTS, NETWORK, IPC].concat();
    if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        all.extend_from_slice(X86_ONLY);
    }
    if cfg!(any(target_arch = "aarch64", target_arch = "arm")) {
        all.extend_from_slice(ARM_ONLY);
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The architectures the filter covers: this machine's and its 32-bit compatibility modes.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

/// Allows `names` (when `args` match, if any are given).
fn allow(names: &[&str], args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActAllow);
    if !args.is_empty() {
        b = b.args(args);
    }
    b.build().expect("every field of a syscall rule is set")
}

/// Fails `names` with `errno` (instead of the default `EPERM`).
fn fail_with(names: &[&str], errno: u32) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno)
        .build()
        .expect("every field of a syscall rule is set")
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let mut a = oci_spec::runtime::LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(v2) = value_two {
        a = a.value_two(v2);
    }
    a.build().expect("every field of a syscall argument is set")
}

/// The filter: `EPERM` for anything not allowed below.
pub fn profile() -> LinuxSeccomp {
    let mut rules = vec![allow(&allowed(), Vec::new())];
    // clone: the flags argument (index 0 on x86_64 and aarch64) without namespace flags.
    rules.push(allow(
        &["clone"],
        vec![arg(
            0,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
        )],
    ));
    // clone3 passes its flags in memory the filter cannot read: send callers back to clone.
    rules.push(fail_with(&["clone3"], ENOSYS));
    // personality: one rule per value (the rules of one call are alternatives).
    for persona in PERSONAS {
        rules.push(allow(
            &["personality"],
            vec![arg(0, LinuxSeccompOperator::ScmpCmpEq, persona, None)],
        ));
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(DENIED_ERRNO)
        .architectures(architectures())
        .syscalls(rules)
        .build()
        .expect("every field of the seccomp profile is set")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls that reach the host kernel's shared state: never allowed, whatever the arguments.
    const NEVER: &[&str] = &[
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "quotactl",
        "settimeofday",
        "clock_settime",
        "stime",
        "sethostname",
        "setdomainname",
        "open_by_handle_at",
        "perf_event_open",
        "userfaultfd",
        "syslog",
        "iopl",
        "ioperm",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
        "fspick",
        "fsconfig",
        "mount_setattr",
        "lookup_dcookie",
        "kcmp",
        "pidfd_getfd",
        "vhangup",
        "fanotify_init",
        "uselib",
        "nfsservctl",
        "_sysctl",
    ];

    #[test]
    fn the_profile_denies_by_default_with_eperm() {
        let p = profile();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(DENIED_ERRNO));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(!json["architectures"].as_array().unwrap().is_empty());
    }

    #[test]
    fn host_reaching_calls_are_never_allowed() {
        let p = profile();
        for rule in p.syscalls().as_ref().unwrap() {
            if rule.action() != LinuxSeccompAction::ScmpActAllow {
                continue;
            }
            for name in rule.names() {
                assert!(!NEVER.contains(&name.as_str()), "{name} is allowed");
            }
        }
    }

    #[test]
    fn the_allow_list_has_no_duplicates_and_covers_the_basics() {
        let all = [
            FILES, MEMORY, PROCESSES, SIGNALS, TIME, EVENTS, NETWORK, IPC, X86_ONLY, ARM_ONLY,
        ]
        .concat();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "a call is listed in two groups");
        for basic in [
            "read",
            "write",
            "execve",
            "openat",
            "mmap",
            "futex",
            "exit_group",
            "socket",
        ] {
            assert!(allowed().contains(&basic), "{basic}");
        }
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags() {
        let p = profile();
        let rules = p.syscalls().as_ref().unwrap();
        let clone = rules
            .iter()
            .find(|r| r.names() == &["clone".to_owned()])
            .expect("a clone rule");
        let a = clone.args().as_ref().unwrap()[0];
        assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!((a.value(), a.value_two()), (CLONE_NAMESPACE_FLAGS, Some(0)));
        // CLONE_NEWUSER (0x10000000) and CLONE_NEWNS (0x20000) are both in the mask.
        assert_ne!(CLONE_NAMESPACE_FLAGS & 0x1000_0000, 0);
        assert_ne!(CLONE_NAMESPACE_FLAGS & 0x0002_0000, 0);
        let clone3 = rules
            .iter()
            .find(|r| r.names() == &["clone3".to_owned()])
            .expect("a clone3 rule");
        assert_eq!(clone3.errno_ret(), Some(ENOSYS));
        assert!(!allowed().contains(&"clone") && !allowed().contains(&"personality"));
    }
}

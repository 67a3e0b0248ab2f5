//! The OCI runtime bundle of a container: `config.json` made from what the pod asks for and what
//! the image says to run, as the typed runtime-spec structures of `oci-spec` (so users, mounts and
//! the seccomp filter are checked by their types, not assembled as loose JSON), with least
//! privilege by default: read-only root, no new privileges, a small capability set (none in
//! effect for a non-root user), the default-deny seccomp filter, masked kernel paths, the image's
//! `USER`, optionally a user namespace, and the host network with an allocated `PORT`.
use std::collections::HashSet;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxIdMappingBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

pub use skiff_plugin_protocol::ContainerSpec;

use crate::seccomp;
use crate::store::RunConfig;
use crate::user::ProcessUser;

/// Default process limit.
pub const DEFAULT_PIDS: i64 = 512;

/// Capabilities a container keeps (everything else is dropped). Each is in the default set
/// container users know; `MKNOD`, `NET_RAW`, `SYS_CHROOT`, `AUDIT_WRITE`, `FSETID` and `SETFCAP`
/// from that set are dropped too (device nodes come from the runtime, raw sockets and chroot are
/// rarely needed by services, and each widens what a compromised process can do).
pub const CAPABILITIES: [Capability; 8] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Kill,
    Capability::NetBindService,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
];

/// A user namespace for containers: container ids `0..size` are host ids `host_id..host_id+size`,
/// so container root is an unprivileged user on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespace {
    /// The first host uid and gid of the range.
    pub host_id: u32,
    /// How many ids are mapped.
    pub size: u32,
}

impl UserNamespace {
    /// Parses `HOST_ID:SIZE` (e.g. `100000:65536`).
    ///
    /// # Errors
    /// A message saying what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("user namespace {text:?}: write HOST_ID:SIZE, e.g. 100000:65536 (HOST_ID above 0)");
        let (h, s) = text.split_once(':').ok_or_else(bad)?;
        let host_id: u32 = h.parse().map_err(|_| bad())?;
        let size: u32 = s.parse().map_err(|_| bad())?;
        if host_id == 0 || size == 0 || host_id.checked_add(size).is_none() {
            return Err(bad());
        }
        Ok(UserNamespace { host_id, size })
    }
}

/// Whether `id` can name a container (it becomes a directory and a runc id).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The process's argv: entrypoint and cmd from the image, replaced by the spec's.
pub fn argv(spec: &ContainerSpec, image: &RunConfig) -> Vec<String> {
    let entrypoint = spec
        .command
        .clone()
        .or_else(|| image.entrypoint.clone())
        .unwrap_or_default();
    let cmd = match (&spec.command, &spec.args) {
        (_, Some(a)) => a.clone(),
        (Some(_), None) => Vec::new(),
        (None, None) => image.cmd.clone().unwrap_or_default(),
    };
    entrypoint.into_iter().chain(cmd).collect()
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source);
    if !options.is_empty() {
        m = m.options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>());
    }
    m.build().expect("every field of a mount is set")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The runtime spec (`config.json`) for `spec` running `image` as `user`.
/// `root` is the root filesystem's path: `rootfs` inside the bundle (a private copy), or the
/// image's shared read-only root. With `userns`, the container gets a user namespace mapping its
/// ids to that host range (its root filesystem must be owned by the mapped ids).
pub fn runtime_spec(
    spec: &ContainerSpec,
    image: &RunConfig,
    root: &str,
    user: &ProcessUser,
    userns: Option<UserNamespace>,
) -> Spec {
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) && !spec.env.iter().any(|(k, _)| k == "HOME") {
        env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
    }
    if let Some(p) = spec.port {
        env.push(format!("PORT={p}"));
    }
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    let cwd = spec
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    // Root keeps the small set; any other user keeps nothing in effect (the bounding set only
    // limits what a setuid-root file could give back, and setuid bits are stripped on unpack).
    let kept: HashSet<Capability> = CAPABILITIES.into_iter().collect();
    let in_effect = if user.uid == 0 {
        kept.clone()
    } else {
        HashSet::new()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(kept)
        .effective(in_effect.clone())
        .permitted(in_effect)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .expect("every capability set is given");
    let mut process_user = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        process_user = process_user.additional_gids(user.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(process_user.build().expect("uid and gid are given"))
        .args(argv(spec, image))
        .env(env)
        .cwd(cwd)
        .no_new_privileges(true)
        .capabilities(capabilities)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(4096u64)
                .soft(4096u64)
                .build()
                .expect("an rlimit has a type and limits"),
        ])
        .build()
        .expect("every process field is given");

    // No network namespace: the host network, on the allocated PORT. In a user namespace that
    // does not own the network, a new sysfs cannot be mounted: the host's is bound read-only.
    let sys = if userns.is_some() {
        mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )
    } else {
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        sys,
        mount(
            "/tmp",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    for v in &spec.volumes {
        mounts.push(mount(v, "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=755"]));
    }

    let mut resources = LinuxResourcesBuilder::default().pids(
        LinuxPidsBuilder::default()
            .limit(spec.pids.unwrap_or(DEFAULT_PIDS))
            .build()
            .expect("a pids limit"),
    );
    if let Some(m) = spec.memory {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(i64::try_from(m).unwrap_or(i64::MAX))
                .build()
                .expect("a memory limit"),
        );
    }
    if let Some(c) = spec.cpu_millis {
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(i64::try_from((c * 100).max(1000)).unwrap_or(i64::MAX))
                .period(100_000u64)
                .build()
                .expect("a cpu quota"),
        );
    }
    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if userns.is_some() {
        namespaces.push(LinuxNamespaceType::User);
    }
    let mut linux = LinuxBuilder::default()
        .cgroups_path(format!("/skiff/{}", spec.id))
        .resources(resources.build().expect("resources"))
        .namespaces(
            namespaces
                .into_iter()
                .map(|t| {
                    LinuxNamespaceBuilder::default()
                        .typ(t)
                        .build()
                        .expect("a namespace")
                })
                .collect::<Vec<_>>(),
        )
        .seccomp(seccomp::profile())
        .masked_paths(strings(&[
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ]))
        .readonly_paths(strings(&[
            "/proc/asound",
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]));
    if let Some(ns) = userns {
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(ns.host_id)
            .size(ns.size)
            .build()
            .expect("an id mapping");
        linux = linux.uid_mappings(vec![map]).gid_mappings(vec![map]);
    }
    SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path(root)
                .readonly(!spec.writable_root)
                .build()
                .expect("a root"),
        )
        .hostname(spec.id.chars().take(63).collect::<String>())
        .mounts(mounts)
        .linux(linux.build().expect("the linux section"))
        .build()
        .expect("every part of the spec is given")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_follows_docker_rules() {
        let image = RunConfig {
            entrypoint: Some(vec!["/bin/busybox".into()]),
            cmd: Some(vec!["httpd".into(), "-f".into()]),
            ..Default::default()
        };
        let mut spec = ContainerSpec::default();
        assert_eq!(argv(&spec, &image), ["/bin/busybox", "httpd", "-f"]);
        spec.args = Some(vec!["echo".into(), "hi".into()]);
        assert_eq!(argv(&spec, &image), ["/bin/busybox", "echo", "hi"]);
        spec.command = Some(vec!["/bin/sh".into()]);
        spec.args = None;
        assert_eq!(
            argv(&spec, &image),
            ["/bin/sh"],
            "a new command drops the image's cmd"
        );
    }

    fn config(spec: &ContainerSpec, user: &ProcessUser, userns: Option<UserNamespace>) -> serde_json::Value {
        serde_json::to_value(runtime_spec(spec, &RunConfig::default(), "rootfs", user, userns)).unwrap()
    }

    #[test]
    fn config_is_locked_down_by_default() {
        let spec = ContainerSpec {
            id: "c1".into(),
            port: Some(20001),
            memory: Some(64 << 20),
            volumes: vec!["/var/cache".into()],
            ..Default::default()
        };
        let c = config(&spec, &ProcessUser::default(), None);
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["noNewPrivileges"], true);
        let env = c["process"]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e == "PORT=20001"));
        assert!(env.iter().any(|e| e == "HOME=/"));
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], 64u64 << 20);
        assert!(
            !c["linux"]["namespaces"].to_string().contains("network"),
            "host network"
        );
        assert!(!c["linux"]["namespaces"].to_string().contains("user"));
        assert!(c["linux"].get("uidMappings").is_none());
        assert!(c["mounts"].to_string().contains("/var/cache"));
        assert_eq!(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(valid_id("pod-1_web.0") && !valid_id("../x") && !valid_id(""));
    }

    #[test]
    fn capabilities_are_a_subset_of_the_familiar_default_and_none_for_other_users() {
        // The default set container users know from Docker.
        const FAMILIAR: [&str; 14] = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ];
        let spec = ContainerSpec {
            id: "c1".into(),
            ..Default::default()
        };
        let root = config(&spec, &ProcessUser::default(), None);
        for set in ["bounding", "effective", "permitted"] {
            let caps = root["process"]["capabilities"][set].as_array().unwrap();
            assert_eq!(caps.len(), CAPABILITIES.len(), "{set}");
            for cap in caps {
                assert!(FAMILIAR.contains(&cap.as_str().unwrap()), "{cap} in {set}");
            }
        }
        assert!(
            root["process"]["capabilities"]["inheritable"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(
            root["process"]["capabilities"]["ambient"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let app = ProcessUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![2000],
            home: Some("/home/app".into()),
        };
        let c = config(&spec, &app, None);
        assert_eq!(c["process"]["user"]["uid"], 1000);
        assert_eq!(c["process"]["user"]["gid"], 1000);
        assert_eq!(c["process"]["user"]["additionalGids"], serde_json::json!([2000]));
        assert!(
            c["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "HOME=/home/app")
        );
        assert!(
            c["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(
            c["process"]["capabilities"]["permitted"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            c["process"]["capabilities"]["bounding"].as_array().unwrap().len(),
            8
        );
    }

    #[test]
    fn a_user_namespace_maps_root_to_the_host_range() {
        let ns = UserNamespace::parse("100000:65536").unwrap();
        assert_eq!((ns.host_id, ns.size), (100_000, 65_536));
        for bad in ["", "100000", "0:65536", "1:0", "x:1", "4294967295:2"] {
            assert!(UserNamespace::parse(bad).is_err(), "{bad}");
        }
        let spec = ContainerSpec {
            id: "c1".into(),
            ..Default::default()
        };
        let c = config(&spec, &ProcessUser::default(), Some(ns));
        assert!(c["linux"]["namespaces"].to_string().contains("\"user\""));
        let map = serde_json::json!([{"hostID": 100000, "containerID": 0, "size": 65536}]);
        assert_eq!(c["linux"]["uidMappings"], map);
        assert_eq!(c["linux"]["gidMappings"], map);
        let sys = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert_eq!(
            sys["type"], "none",
            "sysfs is bound, not mounted, without a network namespace"
        );
    }
}

//! The OCI runtime bundle of a container: `config.json` made from what the pod asks for and what
//! the image says to run, with safe defaults (read-only root, no new privileges, a small
//! capability set, masked kernel paths, the host network with an allocated `PORT`).
use serde_json::{Value, json};

pub use skiff_plugin_protocol::ContainerSpec;

use crate::store::RunConfig;

/// Default process limit.
pub const DEFAULT_PIDS: i64 = 512;

/// Capabilities a container keeps (everything else is dropped).
const CAPABILITIES: [&str; 8] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
];

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

/// `config.json` for `spec` running `image`.
/// `root` is the root filesystem's path: `rootfs` inside the bundle (a private copy), or the
/// image's shared read-only root.
pub fn config_json(spec: &ContainerSpec, image: &RunConfig, root: &str) -> Value {
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
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
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let mut mounts = vec![
        json!({"destination":"/proc","type":"proc","source":"proc"}),
        json!({"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}),
        json!({"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}),
        json!({"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]}),
        json!({"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]}),
        json!({"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}),
        json!({"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["nosuid","nodev","mode=1777","size=65536k"]}),
    ];
    for v in &spec.volumes {
        mounts.push(json!({"destination": v, "type":"tmpfs","source":"tmpfs","options":["nosuid","nodev","mode=755"]}));
    }
    let mut resources = json!({"pids": {"limit": spec.pids.unwrap_or(DEFAULT_PIDS)}});
    if let Some(m) = spec.memory {
        resources["memory"] = json!({"limit": m});
    }
    if let Some(c) = spec.cpu_millis {
        resources["cpu"] = json!({"quota": (c * 100).max(1000), "period": 100_000});
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": argv(spec, image),
            "env": env,
            "cwd": cwd,
            "noNewPrivileges": true,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}]
        },
        "root": {"path": root, "readonly": !spec.writable_root},
        "hostname": spec.id.chars().take(63).collect::<String>(),
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/skiff/{}", spec.id),
            "resources": resources,
            // No network namespace: the host network, on the allocated PORT.
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
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

    #[test]
    fn config_is_locked_down_by_default() {
        let spec = ContainerSpec {
            id: "c1".into(),
            port: Some(20001),
            memory: Some(64 << 20),
            volumes: vec!["/var/cache".into()],
            ..Default::default()
        };
        let c = config_json(&spec, &RunConfig::default(), "rootfs");
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["noNewPrivileges"], true);
        assert!(
            c["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "PORT=20001")
        );
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], 64u64 << 20);
        assert!(
            !c["linux"]["namespaces"].to_string().contains("network"),
            "host network"
        );
        assert!(c["mounts"].to_string().contains("/var/cache"));
        assert!(
            !c["process"]["capabilities"]["bounding"]
                .to_string()
                .contains("CAP_SYS_ADMIN")
        );
        assert!(valid_id("pod-1_web.0") && !valid_id("../x") && !valid_id(""));
    }
}

//! OCI containers on `skiff up` with the `skiff-oci` runtime plugin and real runc: a busybox
//! httpd image built here and pushed to Debian's `docker-registry` on loopback runs as a
//! Deployment behind a Service and an HTTPRoute, scales, rolls and is deleted like a wasm app; a
//! pod mixing a wasm component and a container lives and dies as one; a container killed from
//! outside is restarted with back-off; a killed plugin is restarted by the agent and finds its
//! containers still running; an image that does not exist fails the pod with a clear reason.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Skiff, repo_root};

/// runc and busybox, installed from Debian when missing; `None` when this process cannot run
/// containers (not root) or they cannot be installed.
fn tools() -> Option<PathBuf> {
    let find = |p: &str| {
        ["/usr/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(p))
            .find(|p| p.exists())
    };
    if find("runc").is_none() || find("busybox").is_none() || find("docker-registry").is_none() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "runc", "busybox-static", "docker-registry"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    find("runc")?;
    find("docker-registry")?;
    find("busybox").filter(|_| root)
}

/// The `skiff-oci` binary beside the `skiff` under test, in the target directory (built when missing).
fn skiff_oci() -> PathBuf {
    let path = Path::new(crate::harness::SKIFF).with_file_name("skiff-oci");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "skiff-oci"])
            .current_dir(repo_root())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && path.exists(),
            "cannot build skiff-oci at {}",
            path.display()
        );
    }
    path
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Pushes a busybox image (`/bin/busybox`, `/bin/sh`; entrypoint busybox httpd on $PORT serving
/// `/www`) to `registry` as `skiff/site:v1`, with the distribution API.
fn push_busybox(registry: &str, busybox: &Path) -> String {
    let bin = std::fs::read(busybox).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "bin/busybox", &bin[..]).unwrap();
    let page = b"hello from a container\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(page.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "www/index.html", &page[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({"architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"), "os": "linux",
        "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["sh", "-c", "exec busybox httpd -f -p $PORT -h /www"]},
        "rootfs": {"type": "layers", "diff_ids": []}}))
    .unwrap();
    let http = reqwest::blocking::Client::new();
    let base = format!("http://{registry}/v2/skiff/site");
    let push = |bytes: &[u8]| {
        let digest = sha256(bytes);
        let started = http.post(format!("{base}/blobs/uploads/")).send().unwrap();
        assert_eq!(started.status().as_u16(), 202);
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("http://{registry}{location}")
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "{:?}", put.text());
        (digest, bytes.len())
    };
    let (config_digest, config_size) = push(&config);
    let (layer_digest, layer_size) = push(&layer);
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]}))
    .unwrap();
    let put = http
        .put(format!("{base}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text());
    format!("{registry}/skiff/site:v1")
}

/// `skiff up` running the oci plugin, with a short restart back-off.
fn start_skiff() -> Skiff {
    Skiff::start_with(&[
        "--runtime-plugin".into(),
        format!("oci={}", skiff_oci().display()),
        "--restart-backoff".into(),
        "500ms".into(),
    ])
}

/// The registry with the busybox image pushed, its reference, and `skiff up` with the plugin;
/// `None` (said loudly) when this machine cannot run containers.
fn setup() -> Option<(skiff_testkit::Registry, String, Skiff, Cleanup)> {
    let Some(busybox) = tools() else {
        skiff_testkit::tool_missing("runc or busybox-static (or root)");
        return None;
    };
    let Some(registry) = skiff_testkit::start_registry() else {
        skiff_testkit::tool_missing("Debian's docker-registry");
        return None;
    };
    let image = push_busybox(&registry.addr, &busybox);
    let s = start_skiff();
    let cleanup = Cleanup(s.state_dir());
    Some((registry, image, s, cleanup))
}

/// Kills whatever containers the test's plugin left (a failed assertion must not leave busybox
/// processes behind).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.0.join("agent/plugins/oci/containers")) else {
            return;
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = Command::new("runc").args(["kill", &id, "KILL"]).output();
            let _ = Command::new("runc").args(["delete", "-f", &id]).output();
        }
    }
}

fn site_manifest(dir: &Path, image: &str, replicas: u32, greeting: &str) -> PathBuf {
    let text = format!(
        r#"apiVersion: skiff.dev/v1
kind: Deployment
metadata:
  name: site
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: site
  template:
    metadata:
      labels:
        app: site
    spec:
      components:
        - name: web
          oci:
            image: {image}
            command: ["/bin/sh", "-c", "mkdir -p /tmp/www && echo \"$GREETING from $SKIFF_POD_NAME\" > /tmp/www/index.html && echo serving on $PORT && exec busybox httpd -f -p $PORT -h /tmp/www"]
            volumes: ["/tmp"]
          env:
            - name: GREETING
              value: {greeting}
          resources:
            memory: 32Mi
---
apiVersion: skiff.dev/v1
kind: Service
metadata:
  name: site
spec:
  selector:
    app: site
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata:
  name: site
spec:
  rules:
    - pathPrefix: /
      backends:
        - service: site
"#
    );
    let path = dir.join(format!("site-{greeting}-{replicas}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn pods(s: &Skiff, selector: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&s.cli_ok(&["get", "pods", "-l", selector, "-o", "json"])).unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Pod names answering `GET /` through the gateway in `n` requests, with the greeting they gave.
fn answering(s: &Skiff, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| s.gateway_get("/"))
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body.trim().to_owned())
        .collect()
}

/// Names of the containers the plugin keeps on disk.
fn container_dirs(s: &Skiff) -> BTreeSet<String> {
    std::fs::read_dir(s.state_dir().join("agent/plugins/oci/containers"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn running_pods(s: &Skiff, selector: &str) -> Vec<Value> {
    pods(s, selector)
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running" && p["status"]["ready"] == true)
        .collect()
}

#[test]
fn an_oci_deployment_serves_scales_rolls_and_is_deleted_like_a_wasm_one() {
    let Some((_registry, image, s, _cleanup)) = setup() else {
        return;
    };
    // The node offers the oci runtime next to wasm.
    s.wait_until("the node to advertise oci", Duration::from_secs(30), || {
        let out = s.cli(&["get", "node", "local", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"]["runtimes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "oci"))
    });
    let work = tempfile::tempdir().unwrap();

    // Two replicas behind a Service and an HTTPRoute: both answer through the gateway.
    s.cli_ok(&[
        "apply",
        "-f",
        site_manifest(work.path(), &image, 2, "v1").to_str().unwrap(),
    ]);
    s.wait_until(
        "both replicas to answer through the gateway",
        Duration::from_secs(90),
        || {
            let names = answering(&s, 20);
            names.len() == 2 && names.iter().all(|n| n.starts_with("v1 from site-"))
        },
    );
    assert_eq!(container_dirs(&s).len(), 2, "one container per replica");
    let logs = s.cli_ok(&["logs", "-l", "app=site"]);
    assert!(
        logs.contains("web serving on 3"),
        "container output in skiff logs:\n{logs}"
    );

    // Scale to 3 and back to 1.
    s.cli_ok(&["scale", "deployment/site", "--replicas", "3"]);
    s.wait_until("three replicas to answer", Duration::from_secs(60), || {
        answering(&s, 30).len() == 3
    });
    s.cli_ok(&["scale", "deployment/site", "--replicas", "1"]);
    s.wait_until(
        "one replica left, its containers removed",
        Duration::from_secs(60),
        || answering(&s, 10).len() == 1 && container_dirs(&s).len() == 1 && pods(&s, "app=site").len() == 1,
    );

    // Rolling update: a new environment rolls new containers in and the old ones out.
    s.cli_ok(&["scale", "deployment/site", "--replicas", "2"]);
    s.cli_ok(&[
        "apply",
        "-f",
        site_manifest(work.path(), &image, 2, "v2").to_str().unwrap(),
    ]);
    s.wait_until("only v2 answering from two pods", Duration::from_secs(90), || {
        let names = answering(&s, 20);
        names.len() == 2 && names.iter().all(|n| n.starts_with("v2 from "))
    });
    s.wait_until(
        "the old containers to be removed",
        Duration::from_secs(60),
        || container_dirs(&s).len() == 2 && running_pods(&s, "app=site").len() == 2,
    );
    let status = s.cli_ok(&["rollout", "status", "deployment/site"]);
    assert!(status.contains("successfully rolled out"), "{status}");

    // Delete: nothing answers and no container is left.
    s.cli_ok(&["delete", "deployment", "site"]);
    s.wait_until("every container removed", Duration::from_secs(60), || {
        container_dirs(&s).is_empty() && pods(&s, "app=site").is_empty()
    });
    assert!(
        answering(&s, 3).is_empty(),
        "nothing serves the route once the deployment is gone"
    );

    // An image the registry does not have: the pod waits on its node with the reason (and a
    // back-off before the next pull), as Kubernetes' ImagePullBackOff, instead of being replaced.
    let missing = image.replace(":v1", ":nope");
    s.cli_ok(&[
        "apply",
        "-f",
        site_manifest(work.path(), &missing, 1, "v3").to_str().unwrap(),
    ]);
    s.wait_until(
        "the pod to wait with ImageNotFound",
        Duration::from_secs(60),
        || {
            pods(&s, "app=site")
                .iter()
                .any(|p| p["status"]["phase"] == "Pending" && p["status"]["reason"] == "ImageNotFound")
        },
    );
    let failed = pods(&s, "app=site");
    let msg = failed
        .iter()
        .find_map(|p| p["status"]["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.contains("skiff/site:nope"),
        "the message names the image: {msg}"
    );
    assert!(
        container_dirs(&s).is_empty(),
        "a failed pull leaves no container behind"
    );
    s.cli_ok(&["delete", "deployment", "site"]);
}

/// A pod with a container (serving) and a wasm component, restarted and re-adopted.
fn mixed_pod(dir: &Path, image: &str) -> PathBuf {
    let wasm = crate::harness::hostile_wasm();
    let text = format!(
        r#"apiVersion: skiff.dev/v1
kind: Pod
metadata:
  name: mixed
  labels:
    app: mixed
spec:
  components:
    - name: web
      oci:
        image: {image}
        command: ["/bin/sh", "-c", "echo container up && exec busybox httpd -f -p $PORT -h /www"]
    - name: side
      wasm:
        path: {wasm}
---
apiVersion: skiff.dev/v1
kind: Service
metadata:
  name: mixed
spec:
  selector:
    app: mixed
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata:
  name: mixed
spec:
  rules:
    - pathPrefix: /
      backends:
        - service: mixed
"#,
        wasm = wasm.display()
    );
    let path = dir.join("mixed.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The host pid of a container, from runc.
fn container_pid(id: &str) -> Option<u32> {
    let out = Command::new("runc").args(["state", id]).output().ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let pid = v["pid"].as_u64()? as u32;
    (v["status"] == "running" && pid > 0).then_some(pid)
}

/// One request to the agent's plugin on its socket; the raw answer.
fn plugin_call(s: &Skiff, method: &str, path: &str, body: &str) -> String {
    use std::io::Read;
    let mut c =
        std::os::unix::net::UnixStream::connect(s.state_dir().join("agent/plugins/oci.sock")).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: plugin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// The pid of this test's `skiff-oci serve`.
fn plugin_pid(s: &Skiff) -> Option<u32> {
    let socket = s.state_dir().join("agent/plugins/oci.sock");
    let out = Command::new("pgrep")
        .args(["-f", &format!("skiff-oci serve --socket {}", socket.display())])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
}

#[test]
fn a_mixed_pod_lives_as_one_and_survives_killed_containers_and_a_killed_plugin() {
    let Some((_registry, image, mut s, _cleanup)) = setup() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    s.cli_ok(&["apply", "-f", mixed_pod(work.path(), &image).to_str().unwrap()]);
    s.wait_until(
        "the mixed pod to serve through the gateway",
        Duration::from_secs(90),
        || {
            s.gateway_get("/")
                .is_some_and(|(st, body)| st == 200 && body.contains("hello from a container"))
        },
    );
    let pod: Value = serde_json::from_str(&s.cli_ok(&["get", "pod", "mixed", "-o", "json"])).unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    let id = format!("skiff-{uid}-web");
    let logs = s.cli_ok(&["logs", "mixed"]);
    assert!(logs.contains("web container up"), "{logs}");

    // Kill the container's process from outside: restarted (restartPolicy Always) after the
    // back-off, counted in restartCount, serving again.
    let pid = container_pid(&id).expect("the container runs");
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    s.wait_until("the container to be restarted", Duration::from_secs(60), || {
        let p: Value = serde_json::from_str(&s.cli_ok(&["get", "pod", "mixed", "-o", "json"])).unwrap();
        p["status"]["restartCount"].as_u64() >= Some(1)
            && p["status"]["ready"] == true
            && container_pid(&id).is_some_and(|p| p != pid)
    });
    assert!(s.gateway_get("/").is_some_and(|(st, _)| st == 200));
    let describe = s.cli_ok(&["get", "pod", "mixed", "-o", "json"]);
    assert!(
        describe.contains("\"restartCount\":1") || describe.contains("\"restartCount\": 1"),
        "{describe}"
    );

    // Kill the plugin: the agent starts it again, the container keeps its process (re-adopted,
    // not restarted), the pod is not restarted and the agent stays up.
    let running = container_pid(&id).expect("the container runs");
    let plugin = plugin_pid(&s).expect("skiff-oci runs");
    let _ = Command::new("kill").args(["-9", &plugin.to_string()]).status();
    s.wait_until("the agent to restart skiff-oci", Duration::from_secs(30), || {
        plugin_pid(&s).is_some_and(|p| p != plugin) && s.log().contains("runtime plugin exited")
    });
    // The pod's supervisor asks the new plugin about its container (every second).
    s.wait_until(
        "the new plugin to answer the pod's logs",
        Duration::from_secs(30),
        || {
            s.cli(&["logs", "mixed"]).status.success()
                && String::from_utf8_lossy(&s.cli(&["logs", "mixed"]).stdout).contains("web container up")
        },
    );
    assert_eq!(
        container_pid(&id),
        Some(running),
        "the container was re-adopted, not restarted"
    );
    let p: Value = serde_json::from_str(&s.cli_ok(&["get", "pod", "mixed", "-o", "json"])).unwrap();
    assert_eq!(p["status"]["restartCount"], 1, "no restart for a plugin restart");
    assert!(s.alive(), "the agent stays up");
    assert!(s.gateway_get("/").is_some_and(|(st, _)| st == 200));

    // A container of no pod (as a pod deleted while the agent was down leaves) is collected.
    let stray = plugin_call(
        &s,
        "POST",
        "/v1/containers",
        &format!(r#"{{"id":"skiff-stray-web","image":"{image}"}}"#),
    );
    assert!(stray.starts_with("HTTP/1.1 201"), "{stray}");
    assert!(container_dirs(&s).contains("skiff-stray-web"));

    // Deleting the pod removes the container and the wasm component together (and the agent's
    // collection after a pod stops removes the stray one).
    s.cli_ok(&["delete", "pod", "mixed"]);
    s.wait_until("the containers to be removed", Duration::from_secs(60), || {
        container_dirs(&s).is_empty() && container_pid(&id).is_none()
    });
    s.wait_until("the route to stop answering", Duration::from_secs(30), || {
        s.gateway_get("/").is_none_or(|(st, _)| st != 200)
    });
    s.kill();
}

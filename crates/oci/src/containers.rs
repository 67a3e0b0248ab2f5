//! Containers run by runc, each under its own small supervisor (the *shim*: `skiff-oci shim`),
//! so a container outlives a restart of the plugin and its exit code is never lost.
//!
//! ```text
//!  <root>/containers/<id>/
//!      spec.json      what was asked (for listing and re-adoption)
//!      config.json    the OCI runtime config      rootfs/   a private copy (writableRoot only)
//!      output.log     stdout and stderr (+ output.log.1, .2 … rotated)
//!      exit           {"code": N, "finishedAt": …}
//!      pid            the container's pid (runc --pid-file)
//!  <root>/rootfs/<manifest hex>[-setid][-u<host id>]/   an image unpacked once, shared read-only
//!                                                       by its containers
//! ```
//!
//! Directories are `0700` and files `0600`: `config.json` and `spec.json` hold the container's
//! environment, resolved Secret values included. With a user namespace the directories on the way
//! to a root filesystem are `0711` instead (the container's mapped root must pass through them to
//! reach its root; it still cannot list them or read a file in them).
//!
//! `start` spawns the shim in its own process group; the shim runs `runc run` in the foreground
//! with the log as its output, waits, and writes `exit`. The state of a container is read from
//! `exit`, the `pid` file and `/proc` (or `runc state` when they cannot say), never from memory,
//! so a new plugin process sees exactly what the old one left.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::bundle::{ContainerSpec, UserNamespace, runtime_spec, valid_id};
use skiff_plugin_protocol::ContainerState;

use crate::error::OciError;
use crate::output::{self, LogLimits};
use crate::store::{ImageStore, StoredImage};
use crate::unpack::{UnpackLimits, UnpackOptions};
use crate::user;

/// Most log bytes returned by [`Runtime::logs`] (the newest).
pub const MAX_LOG_BYTES: u64 = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExitFile {
    code: i32,
    finished_at: String,
}

/// How a plugin confines its containers beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Run every container in a user namespace mapped to this host range (off by default).
    pub user_namespace: Option<UserNamespace>,
    /// Keep setuid and setgid bits of image files (stripped by default).
    pub keep_setid: bool,
    /// How much output each container keeps on disk.
    pub log: LogLimits,
}

/// The containers of one plugin.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    runc: PathBuf,
    shim: PathBuf,
    store: ImageStore,
    options: RuntimeOptions,
}

/// Creates `dir` (and missing parents) and gives it `mode`.
fn private_dir(dir: &Path, mode: u32) -> Result<(), OciError> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(OciError::io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(OciError::io(dir))
}

/// Writes `bytes` to a new file at `path` that only its owner may read (`0600` from the start).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(OciError::io(path))
}

fn runc_err(id: &str, what: &str, detail: impl std::fmt::Display) -> OciError {
    OciError::Container {
        id: id.to_owned(),
        reason: format!("{what}: {detail}"),
    }
}

impl Runtime {
    /// Containers under `root/containers`, images from `store`, run by the `runc` binary, each
    /// supervised by `shim` (the `skiff-oci` executable, run as `skiff-oci shim …`), with the
    /// default [`RuntimeOptions`].
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(
        root: impl Into<PathBuf>,
        store: ImageStore,
        runc: PathBuf,
        shim: PathBuf,
    ) -> Result<Self, OciError> {
        Self::with_options(root, store, runc, shim, RuntimeOptions::default())
    }

    /// [`new`](Self::new) with `options`.
    ///
    /// # Errors
    /// The directories cannot be created or given their modes.
    pub fn with_options(
        root: impl Into<PathBuf>,
        store: ImageStore,
        runc: PathBuf,
        shim: PathBuf,
        options: RuntimeOptions,
    ) -> Result<Self, OciError> {
        let root = root.into();
        let passable = if options.user_namespace.is_some() {
            0o711
        } else {
            0o700
        };
        private_dir(&root, passable)?;
        private_dir(&root.join("containers"), passable)?;
        private_dir(&root.join("rootfs"), passable)?;
        // Unpacks a previous process did not finish.
        if let Ok(entries) = fs::read_dir(root.join("rootfs")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".unpacking-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Runtime {
            root,
            runc,
            shim,
            store,
            options,
        })
    }

    /// How unpacked root filesystems are made for these options.
    fn unpack_options(&self) -> UnpackOptions {
        UnpackOptions {
            limits: UnpackLimits::default(),
            keep_setid: self.options.keep_setid,
            id_offset: self.options.user_namespace.map_or(0, |n| n.host_id),
        }
    }

    /// The image store.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    fn dir(&self, id: &str) -> Result<PathBuf, OciError> {
        if !valid_id(id) {
            return Err(OciError::Container {
                id: id.to_owned(),
                reason: "not a valid container id: use letters, digits, '-', '_' and '.' (at most 128)"
                    .into(),
            });
        }
        Ok(self.root.join("containers").join(id))
    }

    /// The image's root filesystem shared by its read-only containers, `<root>/rootfs/<manifest
    /// hex>` (with `-setid` when setuid bits are kept, `-u<host id>` for a user namespace, as
    /// they are unpacked differently): unpacked once (into a temporary directory, then renamed into place, so a crash or a
    /// concurrent create never leaves a partial one).
    fn shared_root(&self, image: &StoredImage) -> Result<PathBuf, OciError> {
        let hex = image
            .manifest_digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| OciError::Manifest {
                reference: image.reference.clone(),
                reason: format!("manifest digest {:?} is not sha256", image.manifest_digest),
            })?;
        let mut name = hex.to_owned();
        if self.options.keep_setid {
            name.push_str("-setid");
        }
        if let Some(ns) = self.options.user_namespace {
            name.push_str(&format!("-u{}", ns.host_id));
        }
        let shared = self.root.join("rootfs").join(&name);
        if shared.is_dir() {
            return Ok(shared);
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = self
            .root
            .join("rootfs")
            .join(format!(".unpacking-{name}-{}-{nanos}", std::process::id()));
        self.store.unpack(image, &tmp, self.unpack_options())?;
        if fs::rename(&tmp, &shared).is_err() {
            // Another create got there first.
            let _ = fs::remove_dir_all(&tmp);
            if !shared.is_dir() {
                return Err(OciError::Io {
                    path: shared,
                    source: std::io::Error::other("cannot move the unpacked root filesystem into place"),
                });
            }
        }
        Ok(shared)
    }

    /// Makes the container: unpacks `image` into its root filesystem, resolves the image's `USER`
    /// there, and writes its bundle. Nothing is left behind when it fails.
    ///
    /// # Errors
    /// [`OciError::Container`] for a bad or taken id; [`OciError::User`] for a `USER` the image's
    /// `/etc/passwd` or `/etc/group` does not list; unpacking errors.
    pub fn create(&self, spec: &ContainerSpec, image: &StoredImage) -> Result<(), OciError> {
        let dir = self.dir(&spec.id)?;
        if dir.exists() {
            return Err(OciError::Container {
                id: spec.id.clone(),
                reason: "a container with this id exists: remove it first".into(),
            });
        }
        let made = (|| {
            // A private root inside the bundle must be reachable by a user namespace's root.
            let userns = self.options.user_namespace;
            let mode = if userns.is_some() && spec.writable_root {
                0o711
            } else {
                0o700
            };
            private_dir(&dir, mode)?;
            let (root, root_path) = if spec.writable_root {
                let path = dir.join("rootfs");
                self.store.unpack(image, &path, self.unpack_options())?;
                ("rootfs".to_owned(), path)
            } else {
                let path = self.shared_root(image)?;
                (path.display().to_string(), path)
            };
            let user = user::resolve_in(&spec.id, image.config.user.as_deref(), &root_path)?;
            let config = runtime_spec(spec, &image.config, &root, &user, userns);
            let config = serde_json::to_vec_pretty(&config).unwrap_or_default();
            write_private(&dir.join("config.json"), &config)?;
            let saved = serde_json::to_vec_pretty(spec).unwrap_or_default();
            write_private(&dir.join("spec.json"), &saved)
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Starts a created container under its shim and waits (up to 10 s) until it runs or ends.
    ///
    /// # Errors
    /// [`OciError::Container`] when it is not created, or runc cannot start it (the reason from
    /// its output).
    pub fn start(&self, id: &str) -> Result<ContainerState, OciError> {
        let dir = self.dir(id)?;
        if !dir.join("config.json").exists() {
            return Err(OciError::NoSuchContainer {
                id: id.to_owned(),
                hint: ": create it first",
            });
        }
        if !matches!(self.state(id)?, ContainerState::Created) {
            return Err(runc_err(id, "cannot start", "it was started already"));
        }
        std::os::unix::process::CommandExt::process_group(
            Command::new(&self.shim)
                .arg("shim")
                .arg(&dir)
                .arg(id)
                .arg(&self.runc)
                .arg("--log-file-bytes")
                .arg(self.options.log.file_bytes.to_string())
                .arg("--log-files")
                .arg(self.options.log.files.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .map_err(|e| runc_err(id, "cannot run its shim", format!("{}: {e}", self.shim.display())))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        // runc writes the pid file once the container's process runs: watch for it (or for the
        // shim's exit file) without running `runc state` each time.
        let pid_file = dir.join("pid");
        loop {
            if !dir.join("exit").exists()
                && let Some(pid) = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok())
                    .filter(|p| *p > 0)
            {
                // runc writes it world-readable; it is state like the rest.
                let _ = fs::set_permissions(&pid_file, std::os::unix::fs::PermissionsExt::from_mode(0o600));
                return Ok(ContainerState::Running { pid });
            }
            if !dir.join("exit").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            match self.state(id)? {
                ContainerState::Created if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                ContainerState::Created => {
                    return Err(runc_err(
                        id,
                        "did not start within 10 s",
                        output::tail(&dir, 4096),
                    ));
                }
                s @ ContainerState::Running { .. } => return Ok(s),
                ContainerState::Exited { code, .. } if code != 0 && runc_refused(&dir) => {
                    return Err(runc_err(id, "runc refused to start it", output::tail(&dir, 4096)));
                }
                s @ ContainerState::Exited { .. } => return Ok(s),
            }
        }
    }

    /// The container's state: from its exit file, runc's pid file and `/proc`, else `runc state`.
    ///
    /// # Errors
    /// [`OciError::Container`] for an unknown id.
    pub fn state(&self, id: &str) -> Result<ContainerState, OciError> {
        let dir = self.dir(id)?;
        if !dir.join("spec.json").exists() {
            return Err(OciError::NoSuchContainer {
                id: id.to_owned(),
                hint: "",
            });
        }
        if let Ok(bytes) = fs::read(dir.join("exit"))
            && let Ok(e) = serde_json::from_slice::<ExitFile>(&bytes)
        {
            return Ok(ContainerState::Exited {
                code: e.code,
                finished_at: e.finished_at,
            });
        }
        // Fast path: runc's pid file names the container's first process; while that process
        // exists and no exit is recorded, the container runs — no runc process is needed to say
        // so (the agent asks about every container every second).
        if let Some(pid) = fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|p| *p > 0)
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            return Ok(ContainerState::Running { pid });
        }
        let out = Command::new(&self.runc)
            .args(["state", id])
            .output()
            .map_err(|e| runc_err(id, "cannot run runc", e))?;
        if out.status.success()
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        {
            let pid = v["pid"].as_u64().unwrap_or(0) as u32;
            return Ok(match v["status"].as_str() {
                Some("running") | Some("paused") | Some("stopped") if pid > 0 => {
                    ContainerState::Running { pid }
                }
                _ => ContainerState::Created,
            });
        }
        Ok(ContainerState::Created)
    }

    /// Stops a running container: SIGTERM, then SIGKILL after `grace`; returns its final state.
    ///
    /// # Errors
    /// [`OciError::Container`] for an unknown id or one that would not die.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<ContainerState, OciError> {
        if !matches!(self.state(id)?, ContainerState::Running { .. }) {
            return self.state(id);
        }
        let kill = |sig: &str| {
            let _ = Command::new(&self.runc)
                .args(["kill", id, sig])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        kill("TERM");
        if let Some(s) = self.wait_exit(id, grace)? {
            return Ok(s);
        }
        kill("KILL");
        match self.wait_exit(id, Duration::from_secs(10))? {
            Some(s) => Ok(s),
            None => Err(runc_err(id, "did not stop", "still running 10 s after SIGKILL")),
        }
    }

    /// Waits up to `limit` for the container to exit: the shim's exit file is checked every
    /// 5 ms (cheap), `runc state` only every 500 ms (for a container whose shim is gone).
    fn wait_exit(&self, id: &str, limit: Duration) -> Result<Option<ContainerState>, OciError> {
        let exit = self.dir(id)?.join("exit");
        let deadline = Instant::now() + limit;
        let mut asked = Instant::now();
        loop {
            let now = Instant::now();
            if exit.exists() || now.duration_since(asked) >= Duration::from_millis(500) {
                asked = now;
                if let s @ ContainerState::Exited { .. } = self.state(id)? {
                    return Ok(Some(s));
                }
            }
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes a container (stopping it first, without grace) and everything it had on disk.
    ///
    /// # Errors
    /// [`OciError::Io`] when its directory cannot be removed.
    pub fn remove(&self, id: &str) -> Result<(), OciError> {
        let dir = self.dir(id)?;
        if dir.join("spec.json").exists() {
            self.stop(id, Duration::ZERO)?;
        }
        let _ = Command::new(&self.runc)
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(OciError::Io { path: dir, source: e }),
        }
    }

    /// The newest output of the container (stdout and stderr, at most [`MAX_LOG_BYTES`], across
    /// rotated files).
    ///
    /// # Errors
    /// [`OciError::Container`] for an unknown id.
    pub fn logs(&self, id: &str) -> Result<String, OciError> {
        let dir = self.dir(id)?;
        if !dir.join("spec.json").exists() {
            return Err(OciError::NoSuchContainer {
                id: id.to_owned(),
                hint: "",
            });
        }
        Ok(output::tail(&dir, MAX_LOG_BYTES))
    }

    /// The file the container's output goes to now (older output is in `output.log.1`, … beside
    /// it; [`output::read_from`] follows it across rotations).
    ///
    /// # Errors
    /// [`OciError::Container`] for an unknown id.
    pub fn log_path(&self, id: &str) -> Result<PathBuf, OciError> {
        let dir = self.dir(id)?;
        if !dir.join("spec.json").exists() {
            return Err(OciError::NoSuchContainer {
                id: id.to_owned(),
                hint: "",
            });
        }
        Ok(output::output_file(&dir, 0))
    }

    /// Whether the container's shim recorded its exit.
    pub fn has_exited(&self, id: &str) -> bool {
        self.dir(id).is_ok_and(|d| d.join("exit").exists())
    }

    /// Every container with its spec and state (a restarted plugin re-adopts them from here).
    pub fn list(&self) -> Vec<(ContainerSpec, ContainerState)> {
        let Ok(entries) = fs::read_dir(self.root.join("containers")) else {
            return Vec::new();
        };
        let mut out: Vec<(ContainerSpec, ContainerState)> = entries
            .flatten()
            .filter_map(|e| {
                let spec: ContainerSpec =
                    serde_json::from_slice(&fs::read(e.path().join("spec.json")).ok()?).ok()?;
                let state = self.state(&spec.id).ok()?;
                Some((spec, state))
            })
            .collect();
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        out
    }
}

/// Whether runc itself failed (as opposed to the container's program exiting).
fn runc_refused(dir: &Path) -> bool {
    let t = output::tail(dir, 4096);
    t.contains("runc run failed") || t.contains("level=error")
}

/// The shim: runs `runc run` for the bundle in `dir` in the foreground, its output (stdout and
/// stderr through one pipe, so their order is kept) written to `dir/output.log`, capped and
/// rotated at `log`; records the exit in `dir/exit`. Returns the exit code.
pub fn run_shim(dir: &Path, id: &str, runc: &Path, log: LogLimits) -> i32 {
    let mut copier = None;
    let (out, err) = match std::io::pipe().and_then(|(r, w)| Ok((r, w.try_clone()?, w))) {
        Ok((reader, w1, w2)) => {
            let dir = dir.to_owned();
            copier = Some(std::thread::spawn(move || {
                let _ = output::copy_rotating(reader, &dir, log);
            }));
            (Stdio::from(w1), Stdio::from(w2))
        }
        Err(_) => (Stdio::null(), Stdio::null()),
    };
    let status = Command::new(runc)
        .args(["run", "--pid-file"])
        .arg(dir.join("pid"))
        .arg("--bundle")
        .arg(dir)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status();
    // The pipe ends when every process of the container is gone (they die with its pid 1).
    if let Some(c) = copier {
        let _ = c.join();
    }
    let code = match status {
        Ok(s) => s
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&s).map(|sig| 128 + sig))
            .unwrap_or(255),
        Err(_) => 255,
    };
    let exit = ExitFile {
        code,
        finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let tmp = dir.join("exit.tmp");
    if write_private(&tmp, &serde_json::to_vec(&exit).unwrap_or_default()).is_ok() {
        let _ = fs::rename(&tmp, dir.join("exit"));
    }
    code
}

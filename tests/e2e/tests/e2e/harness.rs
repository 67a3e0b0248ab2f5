//! Starting `skiff up`, polling with deadlines, and running CLI verbs.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `skiff` binary under test: `skiff_cli::main` built from this checkout as this package's
/// binary `skiff-e2e` (`src/main.rs`).
pub(crate) const SKIFF: &str = env!("CARGO_BIN_EXE_skiff-e2e");

/// The workspace root (for examples/ and tests/guests/).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A blocking HTTP client that trusts the cluster CA in the PEM file `ca` (for `https://` API
/// URLs; plain `http://` works too).
pub(crate) fn https_client(ca: &Path, timeout: Duration) -> reqwest::blocking::Client {
    https_client_builder(ca).timeout(timeout).build().expect("client")
}

/// [`https_client`] before it is built, for other settings.
pub(crate) fn https_client_builder(ca: &Path) -> reqwest::blocking::ClientBuilder {
    // The server is checked as Skiff's clients check it: its certificate must name the control
    // role and chain to the cluster CA, whatever address the URL holds.
    let pem = std::fs::read_to_string(ca).expect("the cluster CA");
    let tls =
        skiff_pki::https::https_client_config_ca(&pem, skiff_pki::https::Peer::Control).expect("TLS config");
    reqwest::blocking::Client::builder().use_preconfigured_tls(tls)
}

/// An HTTPS client holding the node certificate in `pki` (as that node would call the API).
pub(crate) fn client_with_cert(pki: &Path) -> reqwest::blocking::Client {
    let cert = skiff_pki::NodeCert::load(pki).expect("node certificate");
    let tls = skiff_pki::https::https_client_config(&cert, skiff_pki::https::Peer::Control).expect("tls");
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The certificate (DER) the control node at `addr` presents in a new TLS handshake, checked
/// against the cluster CA in `ca` the way Skiff's clients check it.
pub(crate) fn presented_certificate(addr: &str, ca: &Path) -> Vec<u8> {
    use std::io::Write;
    let pem = std::fs::read_to_string(ca).expect("the cluster CA");
    let config =
        skiff_pki::https::https_client_config_ca(&pem, skiff_pki::https::Peer::Control).expect("TLS config");
    let name = rustls::pki_types::ServerName::try_from("control.skiff.internal").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("connection");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.flush().expect("TLS handshake");
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(tls.sock).expect("TLS handshake");
    }
    tls.conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// The DER of the PEM certificate in `file`.
pub(crate) fn certificate_der(file: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(file)
        .expect("a PEM certificate")
        .to_vec()
}

/// The hello component of `examples/hello-http`.
pub(crate) fn hello_wasm() -> PathBuf {
    repo_root().join("examples/hello-http/hello.wasm")
}

/// `examples/hello-http/app.yaml` with its `wasm.path` made absolute, ready to apply from a
/// test's own directory.
pub(crate) fn hello_app() -> String {
    std::fs::read_to_string(repo_root().join("examples/hello-http/app.yaml"))
        .expect("examples/hello-http/app.yaml")
        .replace("path: hello.wasm", &format!("path: {}", hello_wasm().display()))
}

/// A free loopback port (bound, then released for the child to take).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A `skiff up` process with its own state dir and ports.
pub(crate) struct Skiff {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) api: u16,
    pub(crate) gateway: u16,
    pub(crate) data_plane: u16,
    child: Option<Child>,
    http: reqwest::blocking::Client,
    /// Extra `skiff up` arguments.
    extra: Vec<String>,
    /// Whether the API also answers plain HTTP (`--plain-http`: most tests call it with curl-like
    /// plain requests on loopback; the CLI always goes over HTTPS with the CA in client.yaml).
    plain_http: bool,
    /// The process's open-file limit (soft and hard), set with prlimit(1) when given.
    nofile: Option<u64>,
}

impl Skiff {
    /// Starts `skiff up` in a new temp dir and waits until its API is ready.
    pub(crate) fn start() -> Skiff {
        Skiff::start_with(&[])
    }

    /// [`start`](Self::start) with the API on HTTPS only, as `skiff up` runs by default.
    pub(crate) fn start_https_only() -> Skiff {
        Skiff::start_as(&[], false)
    }

    /// [`start`](Self::start) with extra `skiff up` arguments.
    pub(crate) fn start_with(extra: &[String]) -> Skiff {
        Skiff::start_as(extra, true)
    }

    /// [`start`](Self::start) with the process's open-file limit (soft and hard) set to `n`.
    pub(crate) fn start_limited(n: u64) -> Skiff {
        let mut s = Skiff::unstarted(&[], true);
        s.nofile = Some(n);
        s.spawn_first();
        s
    }

    fn start_as(extra: &[String], plain_http: bool) -> Skiff {
        let mut s = Skiff::unstarted(extra, plain_http);
        s.spawn_first();
        s
    }

    /// A `skiff up` (plain HTTP API too) with `extra` arguments, not started yet: prepare its
    /// state dir, then [`spawn`](Self::spawn) it.
    pub(crate) fn prepared(extra: &[String]) -> Skiff {
        Skiff::unstarted(extra, true)
    }

    fn unstarted(extra: &[String], plain_http: bool) -> Skiff {
        let dir = tempfile::tempdir().expect("tempdir");
        Skiff {
            dir,
            api: free_port(),
            gateway: free_port(),
            data_plane: free_port(),
            child: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            extra: extra.to_vec(),
            plain_http,
            nofile: None,
        }
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts the process for the first time. A port picked free may have been taken by then
    /// (another test's client socket got it as its ephemeral port): the process then exits
    /// saying so, and it is started again on new ports.
    fn spawn_first(&mut self) {
        for _ in 0..3 {
            self.launch();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                if self.ready() {
                    return;
                }
                if !self.alive() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.log().contains("Address already in use") {
                break;
            }
            let _ = std::fs::write(self.dir.path().join("skiff.log"), "");
            (self.api, self.gateway, self.data_plane) = (free_port(), free_port(), free_port());
        }
        self.wait_ready();
    }

    /// (Re)starts the process on the same state dir and ports.
    pub(crate) fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    /// Starts the process, without waiting.
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("skiff.log"))
            .expect("log file");
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(SKIFF);
                c
            }
            None => Command::new(SKIFF),
        };
        let child = cmd
            .arg("up")
            .arg("--dir")
            .arg(self.state_dir())
            .args(["--api", &format!("127.0.0.1:{}", self.api)])
            .args(["--gateway", &format!("127.0.0.1:{}", self.gateway)])
            .args(["--data-plane", &format!("127.0.0.1:{}", self.data_plane)])
            .args(self.plain_http.then_some("--plain-http"))
            .args(&self.extra)
            .env("RUST_LOG", "info,skiff_control=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn skiff up");
        self.child = Some(child);
    }

    /// Whether the API answers `/readyz`.
    fn ready(&self) -> bool {
        let scheme = if self.plain_http { "http" } else { "https" };
        let api = format!("{scheme}://127.0.0.1:{}/readyz", self.api);
        let ca = self.state_dir().join("pki").join("ca.crt");
        let http = if self.plain_http {
            self.http.clone()
        } else if ca.exists() {
            https_client(&ca, Duration::from_secs(20))
        } else {
            return false;
        };
        http.get(&api)
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    }

    /// Waits until the API answers `/readyz`, or panics with the log.
    fn wait_ready(&self) {
        self.wait_until("the API answers /readyz", Duration::from_secs(60), || {
            self.ready()
        });
    }

    /// Kills the process (SIGKILL: nothing gets to flush).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().map(|s| s.is_none()).unwrap_or(false))
    }

    /// The exit code of a process that has exited (`None` while it runs, or after a signal).
    pub(crate) fn exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .and_then(|st| st.code())
    }

    /// The process log so far (for failure messages).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("skiff.log")).unwrap_or_default()
    }

    /// Runs a CLI verb against this cluster.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Command::new(SKIFF)
            .args(args)
            .arg("--config")
            .arg(self.state_dir().join("client.yaml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run skiff")
    }

    /// Runs a CLI verb that must succeed; returns stdout.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "skiff {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// GET through the gateway: (status, body), or None when the connection failed.
    pub(crate) fn gateway_get(&self, path: &str) -> Option<(u16, String)> {
        let r = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.gateway))
            .send()
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().unwrap_or_default()))
    }

    /// Polls `f` until it is true, or panics after `limit` with the process log.
    pub(crate) fn wait_until(&self, what: &str, limit: Duration, f: impl FnMut() -> bool) {
        poll(what, limit, f, || format!("--- skiff log ---\n{}", self.log()));
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Builds the guest components of the standalone Cargo project `dir` (wasm32-wasip2, release)
/// and returns the directory the `.wasm` files are in.
pub(crate) fn build_wasm_project(dir: &Path) -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run cargo for the guest");
    assert!(
        status.success(),
        "building {} failed (is the wasm32-wasip2 target installed?)",
        dir.display()
    );
    dir.join("target/wasm32-wasip2/release")
}

/// Builds the hostile guest component (wasm32-wasip2) once and returns its path.
pub(crate) fn hostile_wasm() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_wasm_project(&repo_root().join("tests/guests")).join("hostile.wasm"))
        .clone()
}

/// The Job test guest (`tests/guests/job`, a wasi:cli command), built with the hostile guest.
pub(crate) fn job_wasm() -> PathBuf {
    hostile_wasm()
        .parent()
        .expect("guest target dir")
        .join("job.wasm")
}

/// A `skiff` process with any arguments, killed on drop; output goes to `log`.
pub(crate) struct Proc {
    child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(args: &[&str], log: PathBuf) -> Proc {
        Self::spawn_in(None, args, log)
    }

    /// Starts `skiff args…`, inside network namespace `netns` when given (`ip netns exec` execs
    /// the binary, so the pid is skiff's own).
    pub(crate) fn spawn_in(netns: Option<&str>, args: &[&str], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, SKIFF]);
                c
            }
            None => Command::new(SKIFF),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn skiff");
        Proc { child, log }
    }

    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`STOP`, `CONT`, `KILL`) with kill(1).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until true; panics after `limit` with `context()` in the message.
pub(crate) fn poll(what: &str, limit: Duration, mut f: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
    panic!("timed out after {limit:?} waiting until {what}\n{}", context());
}

/// A `skiff server` in `dir/server` on a free loopback port, ready: the process, its API URL, its
/// admin token and an HTTP client.
pub(crate) fn start_server(dir: &Path) -> (Proc, String, String, reqwest::blocking::Client) {
    let api = free_port();
    let server_url = format!("http://127.0.0.1:{api}");
    let state = dir.join("server");
    let server = Proc::spawn(
        &[
            "server",
            "--dir",
            state.to_str().expect("utf-8"),
            "--api",
            &format!("127.0.0.1:{api}"),
            "--peer-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--plain-http",
        ],
        dir.join("server.log"),
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    poll(
        "the server is ready",
        Duration::from_secs(60),
        || {
            http.get(format!("{server_url}/readyz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
        || server.output(),
    );
    let token = std::fs::read_to_string(state.join("admin.token")).expect("admin token");
    (server, server_url, token.trim().to_owned(), http)
}

/// The cluster join token of the server `start_server` started under `dir` (agents and gateways
/// join with it).
pub(crate) fn join_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server").join("join.token"))
        .expect("join token")
        .trim()
        .to_owned()
}

/// The function test guest (`tests/guests/function`, a `skiff:function` handler), built with the
/// hostile guest.
pub(crate) fn function_wasm() -> PathBuf {
    guest_wasm("function")
}

/// The test guest `tests/guests/NAME`, built with the others.
pub(crate) fn guest_wasm(name: &str) -> PathBuf {
    hostile_wasm()
        .parent()
        .expect("guest target dir")
        .join(format!("{name}.wasm"))
}

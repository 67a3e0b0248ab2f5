//! Shared fixtures: a cluster CA, node certificates, a recording handler, a served port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rustls::ClientConfig;
use skiff_peer::{BoxFuture, JoinMember, JoinRequest, JoinResponse, PeerHandler};
use skiff_pki::{ClusterCa, Identity, NodeCert, secrets_equal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);

/// A control node's credentials, issued by `ca`.
pub(crate) fn control(ca: &ClusterCa, raft_id: u64) -> NodeCert {
    ca.issue(&Identity::control(format!("cp-{raft_id}"), raft_id), DAY)
        .unwrap()
}

/// A raft message between two nodes.
pub(crate) fn msg(from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Records what arrives; answers joins for a cluster whose secret it knows.
pub(crate) struct Recorder {
    pub(crate) messages: Mutex<Vec<Message>>,
    pub(crate) joins: AtomicUsize,
    pub(crate) ca: Arc<ClusterCa>,
    pub(crate) secret: String,
}

impl Recorder {
    pub(crate) fn new(ca: Arc<ClusterCa>, secret: &str) -> Arc<Self> {
        Arc::new(Recorder {
            messages: Mutex::new(Vec::new()),
            joins: AtomicUsize::new(0),
            ca,
            secret: secret.to_owned(),
        })
    }

    /// How many raft messages were decoded and delivered.
    pub(crate) fn decoded(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    pub(crate) fn joins(&self) -> usize {
        self.joins.load(Ordering::SeqCst)
    }
}

impl PeerHandler for Recorder {
    fn raft(&self, msg: Message) {
        self.messages.lock().unwrap().push(msg);
    }

    fn snapshot(&self, _msg: Message) -> Result<skiff_raft::snapshot::IncomingSnapshot, String> {
        Err("this recorder takes no snapshots".to_owned())
    }

    fn join(&self, req: JoinRequest) -> BoxFuture<'_, Result<JoinResponse, String>> {
        Box::pin(async move {
            self.joins.fetch_add(1, Ordering::SeqCst);
            if !secrets_equal(&req.token_secret, &self.secret) {
                return Err("the join token's secret is wrong or expired".into());
            }
            let raft_id = 7;
            let cert_pem = self
                .ca
                .sign(&req.csr_pem, &Identity::control(req.name.clone(), raft_id), DAY)
                .map_err(|e| e.to_string())?;
            Ok(JoinResponse {
                raft_id,
                cert_pem,
                ca_pem: self.ca.cert_pem().to_owned(),
                members: vec![JoinMember {
                    raft_id: 1,
                    name: "cp-1".into(),
                    peer_addr: "127.0.0.1:1".into(),
                    api_url: "https://127.0.0.1:2".into(),
                }],
                handover: serde_json::json!({"note": "opaque"}),
            })
        })
    }
}

/// Serves `node`'s peer port on a fresh loopback port (or `addr`).
pub(crate) async fn start(
    node: &NodeCert,
    handler: Arc<dyn PeerHandler>,
    addr: Option<SocketAddr>,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = skiff_pki::server_config(node).unwrap();
    let task = tokio::spawn(skiff_peer::serve(listener, tls, handler));
    (addr, task)
}

/// Polls `cond` every 10 ms until it holds, failing after `secs` seconds.
pub(crate) async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw TLS connection to a peer port, to write hand-made frames.
pub(crate) async fn raw_connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(skiff_pki::CONTROL_SERVER_NAME).unwrap();
    TlsConnector::from(cfg).connect(name, tcp).await.unwrap()
}

/// A RAFT frame: type 1, u32 big-endian length, protobuf message.
pub(crate) fn raft_frame(m: &Message) -> Vec<u8> {
    let body = m.write_to_bytes().unwrap();
    let mut f = vec![1u8];
    f.extend((body.len() as u32).to_be_bytes());
    f.extend(body);
    f
}

/// Writes `bytes` (errors ignored: the server may already have hung up) and reports whether the
/// server then closes the connection within five seconds.
pub(crate) async fn server_closes(stream: &mut TlsStream<TcpStream>, bytes: &[u8]) -> bool {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

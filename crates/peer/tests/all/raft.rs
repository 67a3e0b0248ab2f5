//! Raft messages between control nodes: delivery, batching, reconnects, and every refusal.

use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::{Entry, Message, MessageType};
use skiff_peer::{PeerTransport, TransportOptions};
use skiff_pki::{ClusterCa, Identity, NodeCert};
use skiff_raft::transport::Transport;

use crate::support::*;

fn transport(node: &NodeCert) -> PeerTransport {
    let options = TransportOptions {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..TransportOptions::default()
    };
    let tls = skiff_pki::client_config(node).unwrap();
    PeerTransport::with_options(tokio::runtime::Handle::current(), tls, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_both_ways_in_batches() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let (n1, n2) = (control(&ca, 1), control(&ca, 2));
    let (h1, h2) = (Recorder::new(ca.clone(), "s"), Recorder::new(ca.clone(), "s"));
    let (a1, _s1) = start(&n1, h1.clone(), None).await;
    let (a2, _s2) = start(&n2, h2.clone(), None).await;
    let (t1, t2) = (transport(&n1), transport(&n2));
    t1.set_peer(2, a2.to_string());
    t2.set_peer(1, a1.to_string());

    // One burst, queued before the lazy connection exists: it leaves in a handful of writes.
    t1.send((1..=1000).map(|term| msg(1, 2, term)).collect());
    t2.send((1..=50).map(|term| msg(2, 1, term)).collect());
    wait_until(10, "1000 messages at node 2", || h2.decoded() == 1000).await;
    wait_until(10, "50 messages at node 1", || h1.decoded() == 50).await;

    let got: Vec<u64> = h2.messages.lock().unwrap().iter().map(|m| m.term).collect();
    assert_eq!(
        got,
        (1..=1000).collect::<Vec<_>>(),
        "one connection keeps the order"
    );
    assert!(
        h1.messages
            .lock()
            .unwrap()
            .iter()
            .all(|m| m.from == 2 && m.to == 1)
    );
    let stats = t1.stats();
    assert_eq!(stats.sent_messages, 1000);
    assert!(
        stats.sent_batches <= 10,
        "1000 messages took {} writes",
        stats.sent_batches
    );
    assert_eq!(stats.dropped, 0);

    // Unknown peers are dropped, not queued.
    t1.send(vec![msg(1, 9, 1)]);
    assert_eq!(t1.stats().dropped, 1);
    assert_eq!(t1.peers().get(&2), Some(&a2.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_reconnects_after_the_peer_restarts() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let (n1, n2) = (control(&ca, 1), control(&ca, 2));
    let h2 = Recorder::new(ca.clone(), "s");
    let (a2, server) = start(&n2, h2.clone(), None).await;
    let t1 = transport(&n1);
    t1.set_peer(2, a2.to_string());
    t1.send(vec![msg(1, 2, 1)]);
    wait_until(10, "the first message", || h2.decoded() == 1).await;

    // Stop the peer: its listener and connections close.
    server.abort();
    let _ = server.await;
    t1.send(vec![msg(1, 2, 2)]); // probably lost: raft tolerates that

    // Start it again on the same address; keep sending until a message gets through.
    let h2b = Recorder::new(ca.clone(), "s");
    let (_, _server) = start(&n2, h2b.clone(), Some(a2)).await;
    let mut term = 3;
    wait_until(15, "a message after the restart", || {
        t1.send(vec![msg(1, 2, term)]);
        term += 1;
        h2b.decoded() > 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_peer_reconnects_to_the_new_address() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let (n1, n2) = (control(&ca, 1), control(&ca, 2));
    let (old, new) = (Recorder::new(ca.clone(), "s"), Recorder::new(ca.clone(), "s"));
    let (a_old, _s1) = start(&n2, old.clone(), None).await;
    let (a_new, _s2) = start(&n2, new.clone(), None).await;
    let t1 = transport(&n1);
    t1.set_peer(2, a_old.to_string());
    t1.send(vec![msg(1, 2, 1)]);
    wait_until(10, "a message at the old address", || old.decoded() == 1).await;
    t1.set_peer(2, a_new.to_string());
    let mut term = 2;
    wait_until(10, "a message at the new address", || {
        t1.send(vec![msg(1, 2, term)]);
        term += 1;
        new.decoded() > 0
    })
    .await;
    t1.remove_peer(2);
    assert!(t1.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_mib_message_crosses_in_chunks() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let (n1, n2) = (control(&ca, 1), control(&ca, 2));
    let h2 = Recorder::new(ca.clone(), "s");
    let (a2, _s) = start(&n2, h2.clone(), None).await;
    let t1 = transport(&n1);
    t1.set_peer(2, a2.to_string());

    let data: Vec<u8> = (0..20 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let mut big = msg(1, 2, 1);
    big.set_msg_type(MessageType::MsgAppend);
    let entry = Entry {
        data: data.clone().into(),
        ..Entry::default()
    };
    big.entries = vec![entry].into();
    t1.send(vec![big, msg(1, 2, 2)]);
    wait_until(30, "the 20 MiB message and the next one", || h2.decoded() == 2).await;
    let got = h2.messages.lock().unwrap();
    assert_eq!(got[0].entries[0].data.as_ref(), &data[..]);
    assert_eq!(got[1].term, 2);
}

/// A client certificate from another CA fails the handshake: the frame is never decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_before_decoding() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let other = ClusterCa::generate("other").unwrap();
    let h = Recorder::new(ca.clone(), "s");
    let (addr, _s) = start(&control(&ca, 2), h.clone(), None).await;

    // Trusts the real cluster's server, but presents a certificate from the other CA.
    let mut intruder = control(&other, 1);
    intruder.ca_pem = ca.cert_pem().to_owned();
    let mut conn = raw_connect(addr, skiff_pki::client_config(&intruder).unwrap()).await;
    assert!(server_closes(&mut conn, &raft_frame(&msg(1, 2, 1))).await);
    assert_eq!(h.decoded(), 0);

    // And a transport with a foreign CA refuses this cluster's server before sending anything.
    let t = transport(&control(&other, 1));
    t.set_peer(2, addr.to_string());
    t.send(vec![msg(1, 2, 1)]);
    wait_until(10, "the stale message to be dropped", || t.stats().dropped > 0).await;
    assert_eq!(t.stats().sent_messages, 0);
    assert_eq!(h.decoded(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_certificate_cannot_send_raft_messages() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let h = Recorder::new(ca.clone(), "s");
    let (addr, _s) = start(&control(&ca, 2), h.clone(), None).await;
    let agent = ca.issue(&Identity::agent("edge-1"), DAY).unwrap();
    let mut conn = raw_connect(addr, skiff_pki::client_config(&agent).unwrap()).await;
    assert!(server_closes(&mut conn, &raft_frame(&msg(1, 2, 1))).await);
    assert_eq!(h.decoded(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_sender_is_refused() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let h = Recorder::new(ca.clone(), "s");
    let (addr, _s) = start(&control(&ca, 2), h.clone(), None).await;
    let cfg = skiff_pki::client_config(&control(&ca, 3)).unwrap();

    // Node 3 claims to be node 1.
    let mut conn = raw_connect(addr, cfg.clone()).await;
    assert!(server_closes(&mut conn, &raft_frame(&msg(1, 2, 1))).await);
    assert_eq!(h.decoded(), 0);

    // Under its own id it is heard.
    let mut conn = raw_connect(addr, cfg).await;
    tokio::io::AsyncWriteExt::write_all(&mut conn, &raft_frame(&msg(3, 2, 1)))
        .await
        .unwrap();
    wait_until(10, "the honest message", || h.decoded() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_connection() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let h = Recorder::new(ca.clone(), "s");
    let (addr, _s) = start(&control(&ca, 2), h.clone(), None).await;
    let cfg = skiff_pki::client_config(&control(&ca, 1)).unwrap();
    let mut conn = raw_connect(addr, cfg).await;
    let mut header = vec![1u8];
    header.extend(((skiff_peer::transport::FRAME_MAX_BYTES + 1) as u32).to_be_bytes());
    assert!(server_closes(&mut conn, &header).await);
    assert_eq!(h.decoded(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_may_not_send_raft_messages() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let h = Recorder::new(ca.clone(), "s");
    let (addr, _s) = start(&control(&ca, 2), h.clone(), None).await;
    let token = skiff_pki::JoinToken::generate(&ca.ca_hash()).unwrap();
    let mut conn = raw_connect(addr, skiff_pki::join_client_config(&token).unwrap()).await;
    let m: Message = msg(1, 2, 1);
    assert!(server_closes(&mut conn, &raft_frame(&m)).await);
    assert_eq!(h.decoded(), 0);
}

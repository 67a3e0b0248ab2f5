//! The join RPC: a node without a certificate gets one, only from the cluster its token names.

use std::sync::Arc;

use skiff_peer::{JoinRequest, PeerError};
use skiff_pki::{ClusterCa, Identity, JoinToken, NodeCert, NodeKey, identity_from_cert};
use tokio::io::AsyncWriteExt;

use crate::support::*;

fn request(key: &NodeKey) -> JoinRequest {
    JoinRequest {
        token_secret: String::new(),
        name: "cp-new".into(),
        csr_pem: key.csr(&Identity::control("cp-new", 1)).unwrap(),
        peer_addr: "127.0.0.1:7443".into(),
        api_url: "https://127.0.0.1:7000".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_gets_a_certificate_that_works() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let token = JoinToken::generate(&ca.ca_hash()).unwrap();
    let h = Recorder::new(ca.clone(), &token.secret);
    let (addr, _s) = start(&control(&ca, 1), h.clone(), None).await;
    let token: JoinToken = token.to_string().parse().unwrap();

    let key = NodeKey::generate().unwrap();
    let resp = skiff_peer::join(&addr.to_string(), &token, request(&key))
        .await
        .unwrap();
    assert_eq!(resp.raft_id, 7);
    assert_eq!(resp.members.len(), 1);
    let node = NodeCert {
        cert_pem: resp.cert_pem,
        key_pem: key.key_pem(),
        ca_pem: resp.ca_pem,
    };
    // The CA chose the identity (raft id 7), not the CSR (which asked for 1).
    assert_eq!(node.identity().unwrap(), Identity::control("cp-new", 7));
    assert_eq!(node.ca_hash().unwrap(), ca.ca_hash());
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(node.cert_pem.as_bytes())
        .map(|d: rustls::pki_types::CertificateDer<'_>| d.to_vec())
        .unwrap();
    assert_eq!(identity_from_cert(&der).unwrap().raft_id(), Some(7));

    // The new certificate is a working peer credential.
    let mut conn = raw_connect(addr, skiff_pki::client_config(&node).unwrap()).await;
    conn.write_all(&raft_frame(&msg(7, 1, 1))).await.unwrap();
    wait_until(10, "a raft message from the new node", || h.decoded() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_ca_is_refused_before_the_secret_is_sent() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let other = ClusterCa::generate("other").unwrap();
    let h = Recorder::new(ca.clone(), "secret");
    let (addr, _s) = start(&control(&ca, 1), h.clone(), None).await;
    let token = JoinToken {
        ca_hash: other.ca_hash(),
        secret: "secret".into(),
    };
    let err = skiff_peer::join(&addr.to_string(), &token, request(&NodeKey::generate().unwrap()))
        .await
        .unwrap_err();
    match &err {
        PeerError::CaMismatch { expected, found, .. } => {
            assert_eq!(expected, &other.ca_hash());
            assert_eq!(found, &ca.ca_hash());
        }
        e => panic!("expected a CA mismatch, got {e}"),
    }
    assert!(err.to_string().contains("the token was not sent"), "{err}");
    assert_eq!(h.joins(), 0, "the handler never saw the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gets_the_handlers_reason() {
    let ca = Arc::new(ClusterCa::generate("test").unwrap());
    let h = Recorder::new(ca.clone(), "right");
    let (addr, _s) = start(&control(&ca, 1), h.clone(), None).await;
    let token = JoinToken {
        ca_hash: ca.ca_hash(),
        secret: "wrong".into(),
    };
    let err = skiff_peer::join(&addr.to_string(), &token, request(&NodeKey::generate().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::JoinRefused { .. }), "{err}");
    assert!(err.to_string().contains("secret is wrong or expired"), "{err}");
    assert_eq!(h.joins(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_says_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let token = JoinToken::generate(&"ab".repeat(32)).unwrap();
    let err = skiff_peer::join(&addr.to_string(), &token, request(&NodeKey::generate().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::Connect { .. }), "{err}");
}

//! Joining with real certificates: a registered node's name cannot be taken with a join token —
//! whether its agent is alive or gone — unless the operator deleted the node or made a token
//! for exactly that replacement.
use sha2::{Digest, Sha256};
use skiff_api::{JoinToken, JoinTokenSpec, Kind, Node, Object, ObjectMeta};
use skiff_client::{ApiPath, Client, ClientError};
use skiff_pki::Identity;
use skiff_pki::https::{Peer, https_client_config};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[path = "support/tls.rs"]
mod tls;

/// Makes a join token (optionally allowed to replace `replaces`); returns its string.
async fn join_token(admin: &Client, id: &str, replaces: Option<&str>) -> String {
    let info: serde_json::Value = admin.get_json(&ApiPath::api().lit("cluster")).await.unwrap();
    let ca_hash = info["caHash"].as_str().unwrap().to_owned();
    let secret = format!("{id}{}", "q".repeat(16 - id.len()));
    admin
        .create(&Object::JoinToken(JoinToken {
            metadata: ObjectMeta::named(id, None),
            spec: JoinTokenSpec {
                secret_hash: hex::encode(Sha256::digest(secret.as_bytes())),
                replaces: replaces.map(str::to_owned),
                ..Default::default()
            },
            ..Default::default()
        }))
        .await
        .unwrap();
    format!("{}{ca_hash}::{id}.{secret}", skiff_pki::TOKEN_PREFIX)
}

async fn join(server: &str, token: &str) -> Result<skiff_pki::NodeCert, ClientError> {
    let dir = tempfile::tempdir().unwrap();
    skiff_client::node_credentials(dir.path(), server, Some(token), &Identity::agent("w1")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_name_is_taken_until_deleted_or_replaced_on_purpose() {
    let control_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("https://{}", listener.local_addr().unwrap());
    let plane = tls::open_plane(control_dir.path()).await;
    let (stop, stop_rx) = watch::channel(false);
    let api = tokio::spawn(plane.clone().serve_api(listener, stop_rx));
    let admin = Client::new(&server.replace("https://", "http://"), plane.admin_token()).unwrap();
    let cluster_token = plane.join_token().unwrap();

    // w1 joins and registers; its agent then goes away (the Node stays, not Ready).
    let cert = join(&server, &cluster_token).await.unwrap();
    let as_w1 = Client::with_tls(&server, "", https_client_config(&cert, Peer::Control).unwrap()).unwrap();
    as_w1
        .create(&Object::Node(Node {
            metadata: ObjectMeta::named("w1", None),
            ..Default::default()
        }))
        .await
        .unwrap();

    for token in [
        cluster_token.clone(),
        join_token(&admin, "plain1", None).await,
        join_token(&admin, "other1", Some("w9")).await,
    ] {
        let err = join(&server, &token).await.unwrap_err().to_string();
        assert!(err.contains("node \"w1\" is registered"), "{err}");
        assert!(err.contains("skiff token create --replace w1"), "{err}");
    }
    // A token made for this replacement takes it over.
    join(&server, &join_token(&admin, "repl01", Some("w1")).await)
        .await
        .unwrap();
    // Once the operator deletes the node, the name is free for any token.
    admin.delete(Kind::Node, None, "w1").await.unwrap();
    join(&server, &join_token(&admin, "plain2", None).await)
        .await
        .unwrap();

    stop.send(true).unwrap();
    let _ = api.await;
}

//! Opening a control node: the state directory, the cluster's PKI and secrets key, the state
//! database (restored from a backup when asked), Raft, the member loops. This is where the
//! control node's parts are put together, so it is the one module that imports them all.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skiff_raft::{RaftConfig, StartOptions};
use skiff_state::{Machine, Reader};

use crate::artifacts::ArtifactStore;
use crate::cluster::MemberInfo;
use crate::error::ControlError;
use crate::files::{load_or_create_token, state_dir};
use crate::plane::{ControlConfig, ControlPlane, Inner, LOCAL_MEMBER};
use crate::replicated::Replicated;
use skiff_api::backup;

impl ControlPlane {
    /// Opens (or initialises) the state in `config.data_dir`, starts Raft and waits until this node
    /// leads, then makes sure the `default` namespace exists.
    ///
    /// # Errors
    /// [`ControlError`] when the directory or database cannot be used or Raft does not start.
    pub async fn open(config: ControlConfig) -> Result<Self, ControlError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| state_dir(dir, e))?;
        let db_path = dir.join("state.redb");
        let bootstrap_snapshot = match &config.restore {
            Some(file) => Some(read_backup(file, &db_path, &config)?),
            None => None,
        };
        let admin_token_path = dir.join("admin.token");
        let prepared = match &config.cluster {
            Some(c) => crate::cluster::prepare(dir, c, &admin_token_path).await?,
            None => {
                crate::cluster::ensure_local_pki(dir, LOCAL_MEMBER)?;
                crate::cluster::Prepared {
                    raft_id: 1,
                    voters: vec![1],
                    meta: MemberInfo {
                        name: LOCAL_MEMBER.into(),
                        peer_addr: String::new(),
                        api_url: String::new(),
                    },
                    transport: None,
                    peer: None,
                    cert: None,
                }
            }
        };
        let db = redb::Database::create(&db_path).map_err(|e| ControlError::Database {
            path: db_path.display().to_string(),
            message: e.to_string(),
        })?;
        let db = Arc::new(db);
        let machine = Machine::new(db.clone());
        let events = machine.event_sender();
        let raft_config = RaftConfig {
            id: prepared.raft_id,
            voters: prepared.voters.clone(),
            meta: prepared.meta.encode(),
            snapshot_every: config.snapshot_every,
            keep_entries: config.keep_entries,
            snapshot_dir: dir.join("snapshots"),
            ..RaftConfig::default()
        };
        let mut options = StartOptions {
            bootstrap_snapshot,
            ..StartOptions::default()
        };
        if let Some(t) = &prepared.transport {
            options.transport = t.clone();
        }
        let raft = skiff_raft::start_with(db.clone(), Replicated(machine), raft_config, options)
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        let admin_token = load_or_create_token(&admin_token_path)?;
        let audit = crate::audit::AuditLog::open(&dir.join("audit")).map_err(|e| state_dir(dir, e))?;
        let artifacts = ArtifactStore::open(dir.join("artifacts"), config.max_artifact_bytes)
            .map_err(|e| state_dir(dir, e))?;
        let pki = crate::cluster::pki_dir(dir);
        let node = skiff_pki::NodeCert::load(&pki).map_err(|e| {
            ControlError::Cluster(format!(
                "cannot load this node's certificate from {}: {e}",
                pki.display()
            ))
        })?;
        if !pki.join(crate::secrets::SECRETS_KEY_FILE).exists() {
            tracing::warn!(
                "no cluster secrets key in {}: creating one (other members of an existing cluster \
                 must be given the same pki/{} file)",
                pki.display(),
                crate::secrets::SECRETS_KEY_FILE
            );
            crate::secrets::ensure_key_file(&pki)?;
        }
        let secrets = crate::secrets::SecretsKey::load(&pki)?;
        let tls_err = |e: skiff_pki::PkiError| ControlError::Cluster(format!("TLS configuration: {e}"));
        // One renewable certificate behind the peer transport, the API port and the member's
        // HTTPS clients (see `renew_member_certificate`).
        let cert_slot = match prepared.cert.clone() {
            Some(slot) => slot,
            None => skiff_pki::CertSlot::new(&node).map_err(tls_err)?,
        };
        let api_tls = skiff_pki::https::api_server_config_slot(&cert_slot).map_err(tls_err)?;
        let https_client = |peer| -> Result<reqwest::Client, ControlError> {
            let tls = skiff_pki::https::https_client_config_slot(&cert_slot, peer).map_err(tls_err)?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| ControlError::Cluster(format!("HTTPS client: {e}")))
        };
        let http = https_client(skiff_pki::https::Peer::Control)?;
        let agent_http = https_client(skiff_pki::https::Peer::Agent)?;
        let clustered = config.cluster.is_some();
        let plane = ControlPlane {
            inner: Arc::new(Inner {
                config,
                raft: raft.clone(),
                reader: Reader::new(db),
                events,
                artifacts,
                admin_token,
                audit,
                watchers: crate::watchers::Watchers::default(),
                http,
                agent_http,
                api_tls,
                node,
                secrets,
                function_samples: Default::default(),
                dispatch: tokio::sync::Notify::new(),
            }),
        };
        tokio::spawn(crate::cluster::renew_member_certificate(
            pki,
            cert_slot,
            plane.inner.config.member_cert_lifetime,
        ));
        if let Some(peer) = prepared.peer {
            let handler = Arc::new(crate::members::Handler {
                raft: raft.clone().into(),
                plane: plane.clone().into(),
            });
            tokio::spawn(skiff_peer::transport::serve(peer.listener, peer.tls, handler));
        }
        if let Some(t) = prepared.transport {
            crate::members::spawn_member_sync(raft.clone(), t, prepared.raft_id);
        }
        if !clustered {
            // Alone: wait to lead so the first request does not see "no leader".
            raft.wait_leader(Duration::from_secs(30))
                .await
                .map_err(|e| ControlError::Raft(e.to_string()))?;
            plane.ensure_namespace(skiff_api::DEFAULT_NAMESPACE).await?;
        }
        Ok(plane)
    }
}

/// Reads and checks a backup for `--restore`; refuses a state dir that already holds state.
fn read_backup(file: &Path, db_path: &Path, config: &ControlConfig) -> Result<Vec<u8>, ControlError> {
    let restore_err = |source| ControlError::Restore {
        path: file.display().to_string(),
        source,
    };
    if config.cluster.as_ref().is_some_and(|c| c.join.is_some()) {
        return Err(ControlError::Cluster(
            "--restore starts a new cluster and cannot be combined with --join; restore on one node, then join the others to it".into(),
        ));
    }
    if db_path.exists() {
        return Err(ControlError::StateDir {
            path: config.data_dir.display().to_string(),
            message: format!(
                "--restore needs an empty state dir, but {} exists; pick a new --data-dir",
                db_path.display()
            ),
        });
    }
    let bytes = std::fs::read(file).map_err(|e| ControlError::StateDir {
        path: file.display().to_string(),
        message: format!("cannot read the backup: {e}"),
    })?;
    let (header, export) = backup::decode_checked(&bytes, skiff_state::check_export).map_err(restore_err)?;
    tracing::info!(file = %file.display(), revision = header.revision, bytes = header.bytes, "restoring from a backup");
    Ok(export.to_vec())
}

//! Test helper shared by the agent's integration tests.
use std::path::Path;
use std::time::Duration;

/// An HTTPS client with a gateway certificate of the cluster in `control_dir`, for calling an
/// agent's data plane (mutual TLS) the way a gateway does.
#[allow(dead_code, reason = "not every test binary calls pods")]
pub(crate) fn data_plane_client(control_dir: &Path) -> reqwest::Client {
    data_plane_client_as(control_dir, &skiff_pki::Identity::gateway("test"))
}

/// An HTTPS client for an agent's data plane with a certificate of `who`.
#[allow(dead_code, reason = "not every test binary calls pods as another identity")]
pub(crate) fn data_plane_client_as(control_dir: &Path, who: &skiff_pki::Identity) -> reqwest::Client {
    let ca = skiff_pki::ClusterCa::load(&control_dir.join("pki")).unwrap();
    let me = ca.issue(who, Duration::from_secs(3600)).unwrap();
    let tls = skiff_pki::https::https_client_config(&me, skiff_pki::https::Peer::Agent).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// A one-member control plane in `dir` whose API also answers plain HTTP, for the tests' admin
/// client on loopback (agents still use HTTPS with their certificates).
#[allow(dead_code, reason = "not every test binary runs a control plane")]
pub(crate) async fn open_plane(dir: &Path) -> skiff_control::ControlPlane {
    skiff_control::ControlPlane::open(skiff_control::ControlConfig {
        plain_http: true,
        ..skiff_control::ControlConfig::new(dir)
    })
    .await
    .unwrap()
}

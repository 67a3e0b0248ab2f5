//! # skiff-oci: Skiff's OCI runtime plugin
//!
//! Containers run beside wasm components through this out-of-process plugin, so a crash here never
//! takes a worker down. This crate holds the plugin's image half:
//!
//! - [`ImageStore`]: pulls images from OCI registries (`oci-client`; HTTPS, or plain HTTP for
//!   registries named insecure), or imports OCI image-layout directories and tarballs; every
//!   manifest, config and layer is verified against its digest before it is kept, content-addressed.
//! - [`Runtime`]: containers made from an image and a [`ContainerSpec`] (a locked-down OCI
//!   `config.json`: read-only root, no new privileges, few capabilities, memory/CPU/pids limits, the
//!   host network with an allocated `PORT`), run by runc under a per-container shim
//!   (`skiff-oci shim`) that outlives plugin restarts and records the exit code; state is read
//!   from disk and `runc state`, so a restarted plugin re-adopts running containers.
//! - [`plugin`]: the runtime-plugin protocol (HTTP + JSON on a Unix socket) that `skiff-oci serve`
//!   answers for an agent.
//! - [`unpack_layers`]: applies layers to a root filesystem without ever writing outside it
//!   (absolute paths, `..`, hard links and symlinks out of the root refused; symlinks in paths
//!   resolved inside the root; OCI whiteouts honoured).
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_oci::OciError> {
//! let store = skiff_oci::ImageStore::open("/var/lib/skiff/oci", vec!["127.0.0.1:5000".into()])?;
//! let image = store.pull("127.0.0.1:5000/web/httpd:v1").await?;
//! store.unpack(&image, std::path::Path::new("/var/lib/skiff/oci/c1/rootfs"), Default::default())?;
//! println!("{} layers, runs {:?}", image.layers.len(), image.config.cmd);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod bundle;
mod containers;
mod error;
pub mod plugin;
mod store;
mod unpack;

pub use bundle::{ContainerSpec, DEFAULT_PIDS, argv, config_json, valid_id};
pub use containers::{MAX_LOG_BYTES, Runtime, run_shim};
pub use error::OciError;
pub use skiff_plugin_protocol::ContainerState;
pub use store::{ImageStore, RunConfig, StoredImage, sha256_digest};
pub use unpack::{UnpackLimits, UnpackStats, apply_layer, unpack_layers};

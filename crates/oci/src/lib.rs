//! # skiff-oci: Skiff's OCI runtime plugin
//!
//! Containers run beside wasm components through this out-of-process plugin, so a crash here never
//! takes a worker down. This crate holds the plugin's image half:
//!
//! - [`ImageStore`]: pulls images from OCI registries (`oci-client`; HTTPS, or plain HTTP for
//!   registries named insecure), or imports OCI image-layout directories and tarballs; every
//!   manifest, config and layer is verified against its digest before it is kept, content-addressed.
//! - [`Runtime`]: containers made from an image and a [`ContainerSpec`] (a least-privileged OCI
//!   `config.json` built from `oci-spec`'s typed structures by [`runtime_spec`]: read-only root, no
//!   new privileges, few capabilities, the default-deny [`seccomp`] filter, the image's `USER`,
//!   optionally a [`UserNamespace`], memory/CPU/pids limits, the host network with an allocated
//!   `PORT`), run by runc under a per-container shim (`skiff-oci shim`) that outlives plugin
//!   restarts, records the exit code and keeps the output size-capped and rotated ([`output`]);
//!   state is read from disk and `runc state`, so a restarted plugin re-adopts running containers.
//!   State and bundle files are `0600`, their directories `0700` (`config.json` holds resolved
//!   Secret values).
//! - [`plugin`]: the runtime-plugin protocol (HTTP + JSON on a Unix socket) that `skiff-oci serve`
//!   answers for an agent.
//! - [`unpack_layers`]: applies layers to a root filesystem without ever writing outside it
//!   (absolute paths, `..`, hard links and symlinks out of the root refused; symlinks in paths
//!   resolved inside the root; OCI whiteouts honoured; setuid/setgid bits stripped unless
//!   allowed).
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_oci::OciError> {
//! let store = skiff_oci::ImageStore::open("/var/lib/skiff/oci", vec!["127.0.0.1:5000".into()])?;
//! let image = store.pull("127.0.0.1:5000/web/httpd:v1").await?;
//! let rootfs = std::path::Path::new("/var/lib/skiff/oci/c1/rootfs");
//! store.unpack(&image, rootfs, skiff_oci::UnpackOptions::default())?;
//! println!("{} layers, runs {:?}", image.layers.len(), image.config.cmd);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod bundle;
mod containers;
mod error;
pub mod output;
pub mod plugin;
pub mod seccomp;
mod store;
mod unpack;
mod user;

pub use bundle::{CAPABILITIES, ContainerSpec, DEFAULT_PIDS, UserNamespace, argv, runtime_spec, valid_id};
pub use containers::{MAX_LOG_BYTES, Runtime, RuntimeOptions, run_shim};
pub use error::OciError;
pub use output::LogLimits;
pub use skiff_plugin_protocol::ContainerState;
pub use store::{ImageStore, RunConfig, StoredImage, sha256_digest};
pub use unpack::{UnpackLimits, UnpackOptions, UnpackStats, apply_layer, unpack_layers};
pub use user::{ProcessUser, resolve as resolve_user};

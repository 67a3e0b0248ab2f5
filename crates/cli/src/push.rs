//! `skiff push FILE`: uploads a component to the cluster's artifact store and prints its digest.
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::config::Connection;

/// Arguments of `skiff push`.
#[derive(Args, Debug)]
pub(crate) struct PushArgs {
    /// The compiled WebAssembly component (.wasm) to upload.
    pub(crate) file: PathBuf,
}

/// Checks that `file` is a valid WebAssembly component (the whole binary, as the control plane
/// checks it again), uploads it, and prints `sha256:<hex>` and the manifest lines that use it.
pub(crate) async fn push(conn: &Connection, a: PushArgs) -> Result<()> {
    let shown = a.file.display();
    let bytes = skiff_manifest::read_component(&a.file).map_err(|e| anyhow!("{e}; nothing was uploaded"))?;
    let client = conn.client()?;
    let digest = client
        .upload_artifact(bytes)
        .await
        .with_context(|| format!("uploading {shown}: the server refused it or cannot be reached"))?;
    println!("{digest}");
    eprintln!("use it in a manifest as:\n  wasm:\n    digest: {digest}");
    Ok(())
}

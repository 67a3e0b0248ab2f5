//! `skiff push FILE`: uploads a component to the cluster's artifact store and prints its digest.
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::config::Connection;

/// Arguments of `skiff push`.
#[derive(Args, Debug)]
pub(crate) struct PushArgs {
    /// The compiled WebAssembly component (.wasm) to upload.
    pub(crate) file: PathBuf,
}

/// Checks that `file` is a WebAssembly binary, uploads it, and prints `sha256:<hex>` and the
/// manifest lines that use it.
pub(crate) async fn push(conn: &Connection, a: PushArgs) -> Result<()> {
    let shown = a.file.display();
    let mut f = std::fs::File::open(&a.file).with_context(|| match std::fs::metadata(&a.file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{shown} does not exist: build the component first or fix the path")
        }
        _ => format!("cannot open {shown}"),
    })?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{shown} is a directory: give the path of a .wasm file");
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {shown}"))?;
    if !bytes.starts_with(b"\0asm") {
        bail!(
            "{shown} is not a WebAssembly file (it does not start with \\0asm): push a compiled \
             .wasm component"
        );
    }
    let client = conn.client()?;
    let digest = client
        .upload_artifact(bytes)
        .await
        .with_context(|| format!("uploading {shown}: the server refused it or cannot be reached"))?;
    println!("{digest}");
    eprintln!("use it in a manifest as:\n  wasm:\n    digest: {digest}");
    Ok(())
}

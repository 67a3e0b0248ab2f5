//! The on-disk cache of compiled components, keyed by the sha256 of the original bytes.
//!
//! Layout, in the runtime's private cache directory:
//!
//! ```text
//! <sha256-hex>.cwasm   the artifact from `Component::serialize`
//! <sha256-hex>.meta    "skiff-cwasm 1" / "engine <hash>" / "artifact <sha256-hex>"
//! ```
//!
//! The `.meta` sidecar is written last (both files through a rename), so a present
//! sidecar means a complete artifact. An artifact is used only when the sidecar names
//! this engine's compatibility hash and the artifact's bytes hash to the recorded
//! value; anything else is recompiled and overwritten.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::chain;

const MAGIC: &str = "skiff-cwasm 1";

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A hex sha256 of the engine's precompile-compatibility hash: artifacts compiled by
/// an engine with another value cannot be loaded by this one.
pub(crate) fn engine_fingerprint(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// Why a component could not be compiled.
#[derive(Debug)]
pub(crate) enum CompileFailure {
    /// The bytes are not a valid component (checked before compiling).
    Invalid(skiff_artifact::InvalidArtifact),
    /// Valid, but wasmtime could not compile it.
    Compile(wasmtime::Error),
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Compiled,
    Disk,
}

/// The disk cache of one runtime.
#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    fingerprint: String,
}

impl DiskCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(DiskCache {
            dir,
            fingerprint: engine_fingerprint(engine),
        })
    }

    fn paths(&self, hex: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{hex}.cwasm")),
            self.dir.join(format!("{hex}.meta")),
        )
    }

    /// Returns the compiled component for `bytes` (whose hex sha256 is `hex`), from
    /// disk when a valid artifact exists, otherwise by validating (the whole binary, with
    /// `skiff-artifact`), compiling and storing it; `compiling` is called once, before that.
    /// Blocking: call from a blocking thread.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        hex: &str,
        bytes: &[u8],
        compiling: impl FnOnce(),
    ) -> Result<(Component, Source), CompileFailure> {
        let (artifact, meta) = self.paths(hex);
        match self.read(engine, &artifact, &meta) {
            Ok(Some(component)) => return Ok((component, Source::Disk)),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(artifact = %artifact.display(), %reason, "ignoring cached component; recompiling");
            }
        }
        compiling();
        skiff_artifact::check_component(bytes).map_err(CompileFailure::Invalid)?;
        let started = std::time::Instant::now();
        let component = Component::new(engine, bytes).map_err(CompileFailure::Compile)?;
        tracing::info!(
            component = %format!("sha256:{hex}"),
            size = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled wasm component"
        );
        if let Err(reason) = self.write(&component, &artifact, &meta) {
            // The component is still usable; only the next process start pays again.
            tracing::warn!(artifact = %artifact.display(), %reason, "cannot store compiled component in the cache");
        }
        Ok((component, Source::Compiled))
    }

    fn read(&self, engine: &Engine, artifact: &Path, meta: &Path) -> Result<Option<Component>, String> {
        let meta_text = match fs::read_to_string(meta) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", meta.display())),
        };
        let mut lines = meta_text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("unknown sidecar format".to_string());
        }
        let engine_line = lines.next().and_then(|l| l.strip_prefix("engine "));
        if engine_line != Some(self.fingerprint.as_str()) {
            // Compiled by another wasmtime version or configuration.
            return Ok(None);
        }
        let Some(expected) = lines.next().and_then(|l| l.strip_prefix("artifact ")) else {
            return Err("sidecar lacks the artifact hash".to_string());
        };
        let code = fs::read(artifact).map_err(|e| format!("cannot read {}: {e}", artifact.display()))?;
        if hex::encode(Sha256::digest(&code)) != expected {
            return Err("artifact does not match the hash in its sidecar".to_string());
        }
        #[allow(
            unsafe_code,
            reason = "loading precompiled machine code is inherently unsafe in wasmtime"
        )]
        // SAFETY: `Component::deserialize` trusts its input to be an artifact produced
        // by `Component::serialize` of a compatible engine. These bytes come from our
        // private cache directory, written only by `DiskCache::write` of this runtime
        // (atomically, through a rename), and we just checked that they hash to the
        // value recorded next to them and that the recording engine has this engine's
        // compatibility hash. Wasmtime additionally checks the artifact's header and
        // refuses incompatible ones with an error.
        let component = unsafe { Component::deserialize(engine, &code) }
            .map_err(|e| format!("cannot deserialize {}: {}", artifact.display(), chain(&e)))?;
        Ok(Some(component))
    }

    fn write(&self, component: &Component, artifact: &Path, meta: &Path) -> Result<(), String> {
        let code = component
            .serialize()
            .map_err(|e| format!("cannot serialize: {}", chain(&e)))?;
        let sidecar = format!(
            "{MAGIC}\nengine {}\nartifact {}\n",
            self.fingerprint,
            hex::encode(Sha256::digest(&code))
        );
        write_atomic(artifact, &code)?;
        write_atomic(meta, sidecar.as_bytes())
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

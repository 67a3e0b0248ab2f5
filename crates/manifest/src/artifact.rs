//! Local `wasm.path` artifacts: resolved against the manifest's directory, checked, and later
//! swapped for the digest the CLI gets back from the artifact store.
use std::io::Read;
use std::path::{Path, PathBuf};

use skiff_api::Object;

use crate::error::UnknownArtifactField;

/// A local file a document refers to, which the CLI must upload before applying the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    /// The field that names the file, e.g. `spec.template.spec.components[0].wasm.path`; pass it
    /// to [`set_digest`] once uploaded.
    pub field_path: String,
    /// Index of the component in the pod spec.
    pub component: usize,
    /// Absolute, canonical path of the file.
    pub path: PathBuf,
}

/// The `\0asm` magic every WebAssembly module and component starts with.
const WASM_MAGIC: [u8; 4] = *b"\0asm";

/// Resolves and checks every `wasm.path` of `object` against `base_dir`.
///
/// Returns the artifacts found and, separately, `(field_path, message)` for each that cannot be
/// used.
pub(crate) fn collect(object: &Object, base_dir: &Path) -> (Vec<ArtifactRef>, Vec<(String, String)>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (i, (prefix, c)) in object.components().into_iter().enumerate() {
        let Some(rel) = c.wasm.as_ref().and_then(|w| w.path.as_deref()) else {
            continue;
        };
        if rel.trim().is_empty() {
            continue; // reported by validation
        }
        let field_path = format!("{prefix}.wasm.path");
        let resolved = base_dir.join(rel);
        match check_file(&resolved) {
            Ok(path) => found.push(ArtifactRef {
                field_path,
                component: i,
                path,
            }),
            Err(why) => problems.push((field_path, why)),
        }
    }
    (found, problems)
}

fn check_file(resolved: &Path) -> Result<PathBuf, String> {
    let shown = resolved.display();
    let meta = std::fs::metadata(resolved).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "file {shown:?} does not exist: wasm.path is relative to the manifest's directory; \
             build the component or fix the path"
        ),
        _ => format!("cannot read {shown:?}: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!(
            "{shown:?} is a directory: wasm.path must name a .wasm file"
        ));
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(resolved)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("{shown:?} is not a WebAssembly file: it is shorter than the wasm header")
            }
            _ => format!("cannot read {shown:?}: {e}"),
        })?;
    if magic != WASM_MAGIC {
        return Err(format!(
            "{shown:?} is not a WebAssembly file (it does not start with \\0asm): point wasm.path at a \
             compiled .wasm component"
        ));
    }
    std::fs::canonicalize(resolved).map_err(|e| format!("cannot resolve {shown:?}: {e}"))
}

/// Replaces the local `wasm.path` named by `field_path` (an [`ArtifactRef::field_path`], e.g.
/// `spec.components[0].wasm.path`; `...wasm` and the component index alone as `...components[0]`
/// work too) by `digest`, the `sha256:...` the artifact store returned for the uploaded file.
///
/// ```
/// # use skiff_api::Object;
/// let yaml = "apiVersion: skiff.dev/v1\nkind: Pod\nmetadata: {name: p}\n\
///             spec: {components: [{name: c, wasm: {path: app.wasm}}]}\n";
/// let mut obj: Object = serde_saphyr::from_str(yaml).unwrap();
/// let digest = format!("sha256:{}", "ab".repeat(32));
/// skiff_manifest::set_digest(&mut obj, "spec.components[0].wasm.path", digest.clone()).unwrap();
/// let Object::Pod(pod) = &obj else { unreachable!() };
/// let wasm = pod.spec.components[0].wasm.as_ref().unwrap();
/// assert_eq!((wasm.path.as_deref(), wasm.digest.as_deref()), (None, Some(digest.as_str())));
/// ```
///
/// # Errors
/// [`UnknownArtifactField`] when the path names no wasm artifact of this object.
pub fn set_digest(
    object: &mut Object,
    field_path: &str,
    digest: impl Into<String>,
) -> Result<(), UnknownArtifactField> {
    let unknown = |o: &Object| UnknownArtifactField {
        field_path: field_path.to_owned(),
        object: o.describe(),
    };
    let wasm = object
        .components_mut()
        .into_iter()
        .find(|(prefix, _)| {
            field_path
                .strip_prefix(prefix.as_str())
                .is_some_and(|tail| matches!(tail, "" | ".wasm" | ".wasm.path"))
        })
        .and_then(|(_, c)| c.wasm.as_mut());
    match wasm {
        Some(w) => {
            w.path = None;
            w.digest = Some(digest.into());
            Ok(())
        }
        None => Err(unknown(object)),
    }
}

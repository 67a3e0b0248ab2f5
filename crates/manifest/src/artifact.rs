//! Local `wasm.path` artifacts: resolved against the manifest's directory, checked (the whole
//! component validated, as the control plane will on upload), and later swapped for the digest
//! the CLI gets back from the artifact store.
use std::path::{Path, PathBuf};

use skiff_api::Object;

use crate::error::{ComponentFileError, UnknownArtifactField};

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
    read_checked(resolved, |e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "file {shown:?} does not exist: wasm.path is relative to the manifest's directory; \
             build the component or fix the path"
        ),
        _ => format!("cannot read {shown:?}: {e}"),
    })?;
    std::fs::canonicalize(resolved).map_err(|e| format!("cannot resolve {shown:?}: {e}"))
}

/// The bytes of the file at `path` once they validate as a WebAssembly component; `io` words
/// a read error.
fn read_checked(path: &Path, io: impl Fn(std::io::Error) -> String) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(&io)?;
    if meta.is_dir() {
        return Err(format!("{shown:?} is a directory: give the path of a .wasm file"));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    skiff_artifact::check_component(&bytes).map_err(|invalid| format!("{shown:?} {invalid}"))?;
    Ok(bytes)
}

/// Reads the component file at `path` and checks that it is a valid WebAssembly component
/// (the whole binary, without compiling it: the check the control plane repeats on upload), so
/// a truncated, corrupted or wrong file is refused before anything is sent.
///
/// # Errors
/// [`ComponentFileError`] saying what is wrong — missing, a directory, unreadable, not wasm, a
/// core module, or the validator's message and offset — and how to fix it.
pub fn read_component(path: &Path) -> Result<Vec<u8>, ComponentFileError> {
    let shown = path.display();
    read_checked(path, |e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{shown} does not exist: build the component first or fix the path")
        }
        _ => format!("cannot read {shown}: {e}"),
    })
    .map_err(ComponentFileError)
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

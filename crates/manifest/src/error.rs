//! Located errors: every problem names its file, document and field.
use std::fmt;

/// A local component file that cannot be uploaded: missing, unreadable, or not a valid
/// WebAssembly component (the message says which, and how to fix it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ComponentFileError(pub String);

/// One problem in a manifest, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file as the user named it (`app.yaml`, `deploy/web.yaml`, `<stdin>`).
    pub file: String,
    /// 1-based index of the document in the file (YAML `---` section or JSON array element);
    /// `None` for problems with the file as a whole.
    pub document: Option<usize>,
    /// Dotted field path inside the document, e.g. `spec.template.spec.components[0].wasm`.
    pub path: Option<String>,
    /// What is wrong, and what is allowed or how to fix it.
    pub message: String,
}

impl ManifestError {
    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        ManifestError {
            file: file.to_owned(),
            document: None,
            path: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(file: &str, document: usize, path: Option<String>, message: impl Into<String>) -> Self {
        ManifestError {
            file: file.to_owned(),
            document: Some(document),
            path,
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(d) = self.document {
            write!(f, "document {d}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one load, in file and document order. Displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// [`set_digest`](crate::set_digest) was given a field path that names no wasm artifact of the
/// object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{object} has no wasm artifact at {field_path:?}: pass the field_path of one of the document's ArtifactRefs"
)]
pub struct UnknownArtifactField {
    /// The path that was given.
    pub field_path: String,
    /// `Kind/namespace/name` of the object.
    pub object: String,
}

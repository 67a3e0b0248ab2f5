//! Loading inputs: files, directories and strings, with limits, duplicate detection and every error
//! collected.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_api::{Kind, Object};

use crate::artifact::{self, ArtifactRef};
use crate::decode;
use crate::error::{ManifestError, ManifestErrors};
use crate::split::{self, RawDocument};

/// Largest input file (or string) accepted: 4 MiB.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most documents accepted in one load, across all files.
pub const MAX_DOCUMENTS: usize = 1000;
/// File extensions read from a directory.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One object of a manifest, validated, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file as the user named it (`<stdin>` for standard input).
    pub file: String,
    /// 1-based index of the document in its file.
    pub index: usize,
    /// The object.
    pub object: Object,
    /// Local files to upload before applying (see [`crate::set_digest`]).
    pub artifacts: Vec<ArtifactRef>,
}

/// Reads a manifest file (`.yaml`, `.yml`, `.json`) or every such file under a directory
/// (recursively, in sorted path order, skipping hidden entries). `wasm.path`s are relative to the
/// directory of the file that names them.
///
/// # Errors
/// Every problem of every document, located; nothing is returned unless everything is valid.
pub fn load_path(path: &Path) -> Result<Vec<Document>, ManifestErrors> {
    load_paths(&[path.to_path_buf()])
}

/// [`load_path`] for several paths at once, as one apply: an object may appear only once across
/// all of them.
///
/// # Errors
/// Every problem of every document, located.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Document>, ManifestErrors> {
    let mut loader = Loader::default();
    for path in paths {
        loader.path(path);
    }
    let origin = match paths {
        [one] => one.display().to_string(),
        _ => "<input>".to_owned(),
    };
    loader.finish(&origin)
}

/// Reads manifests from text (standard input, a request body). `origin` names it in errors (use
/// `<stdin>` for standard input); an `origin` ending in `.json`, or text that is valid JSON, is
/// read as JSON (one object or an array of objects), anything else as YAML. `wasm.path`s resolve against the current directory.
///
/// # Errors
/// Every problem of every document, located.
pub fn load_str(text: &str, origin: &str) -> Result<Vec<Document>, ManifestErrors> {
    let base = std::env::current_dir().unwrap_or_default();
    load_str_in(text, origin, &base)
}

/// [`load_str`] with `wasm.path`s resolved against `base_dir`.
///
/// # Errors
/// Every problem of every document, located.
pub fn load_str_in(text: &str, origin: &str, base_dir: &Path) -> Result<Vec<Document>, ManifestErrors> {
    let mut loader = Loader::default();
    if text.len() as u64 > MAX_FILE_BYTES {
        loader.errors.push(too_big(origin, text.len() as u64));
    } else {
        // YAML is a superset of JSON, but JSON read as YAML would turn an array of objects into
        // one list document: read valid JSON as JSON, everything else (flow-style YAML such as
        // `{kind: Pod, ...}` too) as YAML.
        let json = origin.ends_with(".json")
            || (split::looks_like_json(text) && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
        loader.text(text, origin, base_dir, json);
    }
    loader.finish(origin)
}

fn too_big(file: &str, size: u64) -> ManifestError {
    ManifestError::file(
        file,
        format!(
            "is {size} bytes: manifests are limited to {MAX_FILE_BYTES} bytes (4 MiB) per file; split it into several files"
        ),
    )
}

/// Where an object was first seen in this load.
struct FirstSeen {
    file: String,
    index: usize,
}

#[derive(Default)]
struct Loader {
    documents: Vec<Document>,
    errors: Vec<ManifestError>,
    seen: BTreeMap<(Kind, String, String), FirstSeen>,
    count: usize,
    over_limit: bool,
}

impl Loader {
    fn path(&mut self, path: &Path) {
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.errors
                    .push(ManifestError::file(&shown, format!("cannot read: {e}")));
                return;
            }
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = walk(path, &mut files) {
                self.errors.push(ManifestError::file(
                    &shown,
                    format!("cannot list the directory: {e}"),
                ));
                return;
            }
            files.sort();
            if files.is_empty() {
                self.errors.push(ManifestError::file(
                    &shown,
                    "has no .yaml, .yml or .json files: nothing to apply",
                ));
            }
            for f in files {
                self.file(&f);
            }
        } else {
            match extension(path) {
                Some(_) => self.file(path),
                None => self.errors.push(ManifestError::file(
                    &shown,
                    "is not a manifest: expected a .yaml, .yml or .json file, or a directory of them",
                )),
            }
        }
    }

    fn file(&mut self, path: &Path) {
        let shown = path.display().to_string();
        tracing::debug!(file = %shown, "loading manifest");
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                self.errors.push(too_big(&shown, m.len()));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                self.errors
                    .push(ManifestError::file(&shown, format!("cannot read: {e}")));
                return;
            }
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.errors
                    .push(ManifestError::file(&shown, format!("cannot read: {e}")));
                return;
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            self.errors.push(ManifestError::file(
                &shown,
                "is not UTF-8 text: save the manifest as UTF-8",
            ));
            return;
        };
        let base = path.parent().unwrap_or(Path::new(""));
        let json = extension(path) == Some("json");
        self.text(&text, &shown, base, json);
    }

    fn text(&mut self, text: &str, file: &str, base: &Path, json: bool) {
        let docs = if json {
            match split::json_documents(text) {
                Ok(d) => d,
                Err(message) => {
                    self.errors.push(ManifestError::file(file, message));
                    return;
                }
            }
        } else {
            split::yaml_documents(text)
        };
        for doc in docs {
            if self.over_limit {
                return;
            }
            self.document(doc, file, base);
        }
    }

    fn document(&mut self, doc: RawDocument, file: &str, base: &Path) {
        let index = doc.index;
        let value = match doc.value {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(message) => {
                self.errors.push(ManifestError::at(file, index, None, message));
                return;
            }
        };
        self.count += 1;
        if self.count > MAX_DOCUMENTS {
            self.over_limit = true;
            self.errors.push(ManifestError::at(
                file,
                index,
                None,
                format!(
                    "too many documents: one apply takes at most {MAX_DOCUMENTS}; split the manifests into several applies"
                ),
            ));
            return;
        }
        let object = match decode::decode(value) {
            Ok(o) => o,
            Err(problems) => {
                for (path, message) in problems {
                    self.errors.push(ManifestError::at(file, index, path, message));
                }
                return;
            }
        };
        let before = self.errors.len();
        if let Err(e) = object.validate() {
            for fe in e.0 {
                self.errors
                    .push(ManifestError::at(file, index, Some(fe.path), fe.message));
            }
        }
        self.check_duplicate(&object, file, index);
        let (artifacts, problems) = artifact::collect(&object, base);
        for (path, message) in problems {
            self.errors
                .push(ManifestError::at(file, index, Some(path), message));
        }
        if self.errors.len() == before {
            self.documents.push(Document {
                file: file.to_owned(),
                index,
                object,
                artifacts,
            });
        }
    }

    fn check_duplicate(&mut self, object: &Object, file: &str, index: usize) {
        let name = &object.meta().name;
        if name.is_empty() {
            return;
        }
        let ns = object.namespace().unwrap_or_default().to_owned();
        let key = (object.kind(), ns, name.clone());
        if let Some(first) = self.seen.get(&key) {
            let place = if first.file == file {
                format!("document {}", first.index)
            } else {
                format!("{} document {}", first.file, first.index)
            };
            self.errors.push(ManifestError::at(
                file,
                index,
                Some("metadata.name".into()),
                format!(
                    "duplicate {}: already defined in {place}; each object may appear only once per apply",
                    object.describe()
                ),
            ));
        } else {
            self.seen.insert(
                key,
                FirstSeen {
                    file: file.to_owned(),
                    index,
                },
            );
        }
    }

    fn finish(self, origin: &str) -> Result<Vec<Document>, ManifestErrors> {
        if !self.errors.is_empty() {
            return Err(ManifestErrors(self.errors));
        }
        if self.documents.is_empty() {
            return Err(ManifestErrors(vec![ManifestError::file(
                origin,
                "has no objects: expected YAML documents or JSON objects with apiVersion, kind and metadata",
            )]));
        }
        Ok(self.documents)
    }
}

/// The manifest extension of `path`, if it has one.
fn extension(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?;
    EXTENSIONS.into_iter().find(|e| ext.eq_ignore_ascii_case(e))
}

/// Every manifest file under `dir`, skipping entries whose name starts with `.`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if extension(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

//! # skiff-manifest: from YAML and JSON to validated objects
//!
//! `skiff apply -f` reads manifests with this crate. It turns YAML streams (documents separated by
//! `---`) and JSON (one object or an array of objects) into [`skiff_api::Object`]s, checks them
//! with [`Object::validate`](skiff_api::Object::validate), checks every local `wasm.path`, and
//! reports **every** problem at once, each located by file, document and field path:
//!
//! ```text
//! app.yaml: document 2: spec.template.spec.components[0].wasm.pth: unknown field "pth", expected one of path, digest, url, world, instanceReuse (did you mean "path"?)
//! app.yaml: document 3: spec.selector: is empty: a service must select pods by at least one label, e.g. app: web
//! ```
//!
//! ```
//! use skiff_api::{Kind, Object};
//!
//! let yaml = "\
//! apiVersion: skiff.dev/v1
//! kind: Service
//! metadata: {name: hello}
//! spec:
//!   selector: {app: hello}
//! ---
//! apiVersion: skiff.dev/v1
//! kind: HTTPRoute
//! metadata: {name: hello}
//! spec:
//!   rules: [{pathPrefix: /, backends: [{service: hello}]}]
//! ";
//! let docs = skiff_manifest::load_str(yaml, "<stdin>").unwrap();
//! assert_eq!(docs.len(), 2);
//! assert_eq!(docs[1].object.kind(), Kind::HttpRoute);
//!
//! let err = skiff_manifest::load_str("apiVersion: skiff.dev/v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {}}\n", "svc.yaml")
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "svc.yaml: document 1: spec.selector: is empty: a service must select pods by at least one label, e.g. app: web"
//! );
//! ```
//!
//! ## Core concepts
//! - **Inputs**: [`load_path`] reads a file or a directory tree (sorted, `.yaml`/`.yml`/`.json`),
//!   [`load_paths`] several as one apply, [`load_str`] / [`load_str_in`] text such as standard
//!   input. Limits: [`MAX_FILE_BYTES`] per file and [`MAX_DOCUMENTS`] per load.
//! - **Pipeline per document**: split (YAML markers / JSON array) → parse to a generic value →
//!   check `apiVersion` and `kind` → deserialize the kind's type, keeping the field path of a
//!   serde error → [`Object::validate`](skiff_api::Object::validate) → duplicate check → local
//!   artifact check. Empty documents are skipped but still counted, so indexes match the file.
//! - [`Document`]: a valid object with its file, 1-based index and the [`ArtifactRef`]s (absolute
//!   paths of local `wasm.path` files) the CLI uploads; [`set_digest`] then swaps each path for the
//!   uploaded digest.
//! - [`ManifestErrors`]: every [`ManifestError`] of the load, one per line when displayed.
//!   `Endpoints`, `Event` and `Node` are written by Skiff itself and are refused in manifests.
//!
//! ## Decisions
//! - `apiVersion: skiff.dev/v1` is required in manifests (as `kubectl` requires it), although the
//!   API types default it: a manifest without it is more likely written for another system.
//! - serde stops at the first type or unknown-field error of a document, so such a document
//!   reports one of those (plus nothing from validation); documents are independent, so every
//!   other document still reports all of its problems.
//! - Documents are cut at `---` / `...` marker lines before parsing (YAML forbids such lines
//!   inside scalars), so a syntax error in one document does not hide the others, and indexes
//!   count empty documents as the file shows them.
//! - A local `wasm.path` must exist, be readable and validate as a WebAssembly component (the
//!   whole binary, without compiling: `skiff-artifact`, as the control plane checks uploads), so
//!   a typo, a truncated build or a core module is caught before anything is uploaded.
//! - An object may appear once per load (kind, namespace defaulting to `default`, name); the later
//!   one is the error, naming where the first is.
#![deny(missing_docs)]

mod artifact;
mod decode;
mod error;
mod load;
mod split;

pub use artifact::{ArtifactRef, read_component, set_digest};
pub use error::{ComponentFileError, ManifestError, ManifestErrors, UnknownArtifactField};
pub use load::{Document, MAX_DOCUMENTS, MAX_FILE_BYTES, load_path, load_paths, load_str, load_str_in};

//! Skiff manifests: YAML and JSON documents turned into validated skiff-api objects, with located errors.
#![deny(missing_docs)]

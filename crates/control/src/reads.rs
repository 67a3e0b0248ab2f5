//! What reads share (list, get, watch, key-value and function reads): the consistency a read
//! waits for, and the label and field filters of lists and watches.
use skiff_api::{Kind, LabelSelector, Object};

use crate::error::ApiError;
use crate::plane::ControlPlane;

/// Waits for a linearizable read (a ReadIndex barrier) unless `?consistency=stale` asks for the
/// local state as it is.
pub(crate) async fn consistent_read(plane: &ControlPlane, consistency: Option<&str>) -> Result<(), ApiError> {
    match consistency {
        None | Some("linearizable") => plane.read_barrier().await,
        Some("stale") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown consistency {other:?}: use linearizable (default) or stale"
        ))),
    }
}

/// A parsed field selector: only the fields the server indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    node_name: Option<String>,
    name: Option<String>,
}

impl FieldSelector {
    pub(crate) fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        let mut f = FieldSelector::default();
        for term in s.unwrap_or("").split(',').filter(|t| !t.trim().is_empty()) {
            match term.trim().split_once('=') {
                Some(("spec.nodeName", v)) => f.node_name = Some(v.to_owned()),
                Some(("metadata.name", v)) => f.name = Some(v.to_owned()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported field selector {term:?}: supported are spec.nodeName=NAME and metadata.name=NAME"
                    )));
                }
            }
        }
        Ok(f)
    }

    pub(crate) fn matches(&self, o: &Object) -> bool {
        if let Some(n) = &self.name
            && &o.meta().name != n
        {
            return false;
        }
        if let Some(n) = &self.node_name {
            let node = match o {
                Object::Pod(p) => p.spec.node_name.as_deref(),
                _ => None,
            };
            if node != Some(n.as_str()) {
                return false;
            }
        }
        true
    }
}

/// Everything a list or watch filters by.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) kind: Kind,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, o: &Object) -> bool {
        o.kind() == self.kind
            && (self.namespace.is_none() || o.namespace() == self.namespace.as_deref())
            && self.labels.matches(&o.meta().labels)
            && self.fields.matches(o)
    }
}

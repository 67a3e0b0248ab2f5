//! [`Object`]: any stored object, one variant per [`Kind`].
use serde::{Deserialize, Serialize};

use crate::access::{ApiToken, Revocation, Role};
use crate::batch::{CronJob, DaemonSet, Job};
use crate::config::{ConfigMap, Secret};
use crate::event::Event;
use crate::function::Function;
use crate::kind::Kind;
use crate::meta::ObjectMeta;
use crate::node::Namespace;
use crate::node::Node;
use crate::pod::Pod;
use crate::quota::ResourceQuota;
use crate::service::{Endpoints, HttpRoute, Service};
use crate::token::JoinToken;
use crate::workload::{Deployment, ReplicaSet};

/// Any stored object, tagged by `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[allow(
    clippy::large_enum_variant,
    reason = "objects are boxed by their owners where it matters"
)]
pub enum Object {
    /// A [`Namespace`].
    Namespace(Namespace),
    /// A [`Node`].
    Node(Node),
    /// A [`Pod`].
    Pod(Pod),
    /// A [`Deployment`].
    Deployment(Deployment),
    /// A [`ReplicaSet`].
    ReplicaSet(ReplicaSet),
    /// A [`Service`].
    Service(Service),
    /// An [`Endpoints`].
    Endpoints(Endpoints),
    /// An [`HttpRoute`].
    #[serde(rename = "HTTPRoute")]
    HttpRoute(HttpRoute),
    /// A [`JoinToken`].
    JoinToken(JoinToken),
    /// An [`Event`].
    Event(Event),
    /// A [`ConfigMap`].
    ConfigMap(ConfigMap),
    /// A [`Secret`].
    Secret(Secret),
    /// A [`DaemonSet`].
    DaemonSet(DaemonSet),
    /// A [`Job`].
    Job(Job),
    /// A [`CronJob`].
    CronJob(CronJob),
    /// A [`Function`].
    Function(Function),
    /// A [`Role`].
    Role(Role),
    /// An [`ApiToken`].
    ApiToken(ApiToken),
    /// A [`Revocation`].
    Revocation(Revocation),
    /// A [`ResourceQuota`].
    ResourceQuota(ResourceQuota),
}

macro_rules! each_variant {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::Namespace($o) => $e,
            Object::Node($o) => $e,
            Object::Pod($o) => $e,
            Object::Deployment($o) => $e,
            Object::ReplicaSet($o) => $e,
            Object::Service($o) => $e,
            Object::Endpoints($o) => $e,
            Object::HttpRoute($o) => $e,
            Object::JoinToken($o) => $e,
            Object::Event($o) => $e,
            Object::ConfigMap($o) => $e,
            Object::Secret($o) => $e,
            Object::DaemonSet($o) => $e,
            Object::Job($o) => $e,
            Object::CronJob($o) => $e,
            Object::Function($o) => $e,
            Object::Role($o) => $e,
            Object::ApiToken($o) => $e,
            Object::Revocation($o) => $e,
            Object::ResourceQuota($o) => $e,
        }
    };
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
            Object::Service(_) => Kind::Service,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::HttpRoute(_) => Kind::HttpRoute,
            Object::JoinToken(_) => Kind::JoinToken,
            Object::Event(_) => Kind::Event,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
            Object::DaemonSet(_) => Kind::DaemonSet,
            Object::Job(_) => Kind::Job,
            Object::CronJob(_) => Kind::CronJob,
            Object::Function(_) => Kind::Function,
            Object::Role(_) => Kind::Role,
            Object::ApiToken(_) => Kind::ApiToken,
            Object::Revocation(_) => Kind::Revocation,
            Object::ResourceQuota(_) => Kind::ResourceQuota,
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        each_variant!(self, o => &o.metadata)
    }

    /// The object's metadata, mutably.
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_variant!(self, o => &mut o.metadata)
    }

    /// The namespace the object lives in (`None` for cluster-scoped kinds).
    pub fn namespace(&self) -> Option<&str> {
        self.kind()
            .namespaced()
            .then(|| self.meta().namespace_or_default())
    }

    /// The JSON of the object's `spec` (or the whole object for kinds without one), used to tell a
    /// spec change (which bumps `generation`) from a metadata-only change.
    pub fn spec_json(&self) -> serde_json::Value {
        match self {
            Object::Namespace(_) | Object::Event(_) => serde_json::Value::Null,
            Object::Node(n) => serde_json::to_value(&n.spec).unwrap_or_default(),
            Object::Pod(p) => serde_json::to_value(&p.spec).unwrap_or_default(),
            Object::Deployment(d) => serde_json::to_value(&d.spec).unwrap_or_default(),
            Object::ReplicaSet(r) => serde_json::to_value(&r.spec).unwrap_or_default(),
            Object::Service(s) => serde_json::to_value(&s.spec).unwrap_or_default(),
            Object::Endpoints(e) => serde_json::to_value(&e.endpoints).unwrap_or_default(),
            Object::HttpRoute(r) => serde_json::to_value(&r.spec).unwrap_or_default(),
            Object::JoinToken(t) => serde_json::to_value(&t.spec).unwrap_or_default(),
            Object::ConfigMap(c) => serde_json::to_value(&c.data).unwrap_or_default(),
            Object::Secret(s) => serde_json::to_value(&s.data).unwrap_or_default(),
            Object::DaemonSet(d) => serde_json::to_value(&d.spec).unwrap_or_default(),
            Object::Job(j) => serde_json::to_value(&j.spec).unwrap_or_default(),
            Object::CronJob(c) => serde_json::to_value(&c.spec).unwrap_or_default(),
            Object::Function(f) => serde_json::to_value(&f.spec).unwrap_or_default(),
            Object::Role(r) => serde_json::to_value(&r.spec).unwrap_or_default(),
            Object::ApiToken(t) => serde_json::to_value(&t.spec).unwrap_or_default(),
            Object::Revocation(r) => serde_json::to_value(&r.spec).unwrap_or_default(),
            Object::ResourceQuota(q) => serde_json::to_value(&q.spec).unwrap_or_default(),
        }
    }

    /// Copies the server-owned status of `old` into `self` (clients cannot write status through a
    /// plain replace; status has its own sub-resource).
    pub fn keep_status_from(&mut self, old: &Object) {
        match (self, old) {
            (Object::Pod(n), Object::Pod(o)) => n.status = o.status.clone(),
            (Object::Deployment(n), Object::Deployment(o)) => n.status = o.status.clone(),
            (Object::ReplicaSet(n), Object::ReplicaSet(o)) => n.status = o.status.clone(),
            (Object::DaemonSet(n), Object::DaemonSet(o)) => n.status = o.status.clone(),
            (Object::Job(n), Object::Job(o)) => n.status = o.status.clone(),
            (Object::CronJob(n), Object::CronJob(o)) => n.status = o.status.clone(),
            (Object::Function(n), Object::Function(o)) => n.status = o.status.clone(),
            (Object::Node(n), Object::Node(o)) => n.status = o.status.clone(),
            (Object::ResourceQuota(n), Object::ResourceQuota(_)) => n.status = None,
            _ => {}
        }
    }

    /// Drops a status the server computes on every read instead of storing it (a
    /// [`ResourceQuota`]'s usage), so a client cannot store one.
    pub fn drop_computed_status(&mut self) {
        if let Object::ResourceQuota(q) = self {
            q.status = None;
        }
    }

    /// The pod spec this object runs (its own, or its template's) with the field path to it.
    pub fn pod_spec(&self) -> Option<(&'static str, &crate::pod::PodSpec)> {
        match self {
            Object::Pod(p) => Some(("spec", &p.spec)),
            Object::Deployment(d) => Some(("spec.template.spec", &d.spec.template.spec)),
            Object::ReplicaSet(r) => Some(("spec.template.spec", &r.spec.template.spec)),
            Object::DaemonSet(d) => Some(("spec.template.spec", &d.spec.template.spec)),
            Object::Job(j) => Some(("spec.template.spec", &j.spec.template.spec)),
            Object::CronJob(c) => Some((
                "spec.jobTemplate.spec.template.spec",
                &c.spec.job_template.spec.template.spec,
            )),
            _ => None,
        }
    }

    /// [`pod_spec`](Self::pod_spec), mutably.
    pub fn pod_spec_mut(&mut self) -> Option<(&'static str, &mut crate::pod::PodSpec)> {
        match self {
            Object::Pod(p) => Some(("spec", &mut p.spec)),
            Object::Deployment(d) => Some(("spec.template.spec", &mut d.spec.template.spec)),
            Object::ReplicaSet(r) => Some(("spec.template.spec", &mut r.spec.template.spec)),
            Object::DaemonSet(d) => Some(("spec.template.spec", &mut d.spec.template.spec)),
            Object::Job(j) => Some(("spec.template.spec", &mut j.spec.template.spec)),
            Object::CronJob(c) => Some((
                "spec.jobTemplate.spec.template.spec",
                &mut c.spec.job_template.spec.template.spec,
            )),
            _ => None,
        }
    }

    /// Every component the object runs, with its field path (`spec.components[0]`,
    /// `spec.component`): its pod spec's, or a function's one.
    pub fn components(&self) -> Vec<(String, &crate::pod::Component)> {
        if let Object::Function(f) = self {
            return vec![("spec.component".to_owned(), &f.spec.component)];
        }
        self.pod_spec()
            .map(|(prefix, spec)| {
                spec.components
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("{prefix}.components[{i}]"), c))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`components`](Self::components), mutably.
    pub fn components_mut(&mut self) -> Vec<(String, &mut crate::pod::Component)> {
        if let Object::Function(f) = self {
            return vec![("spec.component".to_owned(), &mut f.spec.component)];
        }
        self.pod_spec_mut()
            .map(|(prefix, spec)| {
                spec.components
                    .iter_mut()
                    .enumerate()
                    .map(|(i, c)| (format!("{prefix}.components[{i}]"), c))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `kind/namespace/name` (or `kind/name`), as used in messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{}/{}", self.kind(), ns, self.meta().name),
            None => format!("{}/{}", self.kind(), self.meta().name),
        }
    }
}

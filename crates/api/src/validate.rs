//! Checks serde cannot make: names, labels, references and ranges. Every problem is reported with
//! the path of the field it is about, so a user can find it in their manifest.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::image::{ImageRef, is_sha256_digest};
use crate::meta::ObjectMeta;
use crate::object::Object;
use crate::pod::PodSpec;
use crate::policy::{DisconnectDelay, DisconnectPolicy, Taint, Toleration, TolerationOperator};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.template.spec.components[0].wasm`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Largest memory limit a single component may ask for.
const MAX_MEMORY: u64 = 4 << 30;
/// Largest replica count a deployment may ask for.
const MAX_REPLICAS: i64 = 10_000;
/// Longest `replaceAfter` / `stopAfter` other than `never`.
const MAX_DISCONNECT_DELAY: Duration = Duration::from_secs(30 * 86_400);

mod access;
mod function;
mod quota;
mod workload;

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn env_source(&mut self, path: &str, value: &str, from: &crate::EnvVarSource) {
        if !value.is_empty() {
            self.err(
                format!("{path}.valueFrom"),
                "give either value or valueFrom, not both",
            );
        }
        let (which, r) = match (&from.config_map_key_ref, &from.secret_key_ref) {
            (Some(r), None) => ("configMapKeyRef", r),
            (None, Some(r)) => ("secretKeyRef", r),
            (None, None) => {
                return self.err(
                    format!("{path}.valueFrom"),
                    "is empty: set configMapKeyRef {name, key} or secretKeyRef {name, key}",
                );
            }
            (Some(_), Some(_)) => {
                return self.err(
                    format!("{path}.valueFrom"),
                    "sets both configMapKeyRef and secretKeyRef: keep exactly one",
                );
            }
        };
        let rp = format!("{path}.valueFrom.{which}");
        if r.name.is_empty() {
            self.err(
                format!("{rp}.name"),
                "is required: name the object in the pod's namespace",
            );
        } else {
            self.dns_label(&format!("{rp}.name"), &r.name, "name");
        }
        if let Some(why) = crate::config::config_key_problem(&r.key) {
            self.err(format!("{rp}.key"), format!("key {why}"));
        }
    }

    fn config_data(&mut self, data: &BTreeMap<String, String>) {
        for (path, message) in crate::config::data_problems(data) {
            self.err(path, message);
        }
    }

    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn dns_label(&mut self, path: &str, value: &str, what: &str) {
        if let Some(why) = dns_label_problem(value) {
            self.err(path, format!("{what} {value:?} {why}"));
        }
    }

    fn labels(&mut self, path: &str, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            if let Some(why) = label_key_problem(k) {
                self.err(format!("{path}[{k:?}]"), format!("label key {why}"));
            }
            if let Some(why) = label_value_problem(v) {
                self.err(format!("{path}[{k:?}]"), format!("label value {v:?} {why}"));
            }
        }
    }

    fn meta(&mut self, obj: &Object) {
        let m: &ObjectMeta = obj.meta();
        if m.name.is_empty() {
            self.err(
                "metadata.name",
                "is required: give the object a name (lowercase letters, digits and '-')",
            );
        } else if obj.kind() == crate::Kind::Revocation {
            // `role.name`: checked against the identity by the revocation's own check.
        } else {
            self.dns_label("metadata.name", &m.name, "name");
        }
        match (&m.namespace, obj.kind().namespaced()) {
            (Some(ns), true) => self.dns_label("metadata.namespace", ns, "namespace"),
            (Some(_), false) => self.err(
                "metadata.namespace",
                format!("{} is cluster-scoped: remove the namespace", obj.kind()),
            ),
            (None, _) => {}
        }
        self.labels("metadata.labels", &m.labels);
    }

    fn placement(&mut self, path: &str, spec: &PodSpec) {
        if let Some(a) = &spec.affinity {
            if let Some(na) = &a.node_affinity {
                for (i, t) in na.required.iter().enumerate() {
                    self.node_term(&format!("{path}.affinity.nodeAffinity.required[{i}]"), t);
                }
                for (i, p) in na.preferred.iter().enumerate() {
                    let pp = format!("{path}.affinity.nodeAffinity.preferred[{i}]");
                    if !(1..=100).contains(&p.weight) {
                        self.err(
                            format!("{pp}.weight"),
                            format!("{} is out of range: use 1 to 100", p.weight),
                        );
                    }
                    self.node_term(&format!("{pp}.preference"), &p.preference);
                }
            }
            for (field, terms) in [
                ("podAffinity", &a.pod_affinity),
                ("podAntiAffinity", &a.pod_anti_affinity),
            ] {
                for (i, t) in terms.iter().enumerate() {
                    let tp = format!("{path}.affinity.{field}[{i}]");
                    if t.topology_key.is_empty() {
                        self.err(
                            format!("{tp}.topologyKey"),
                            "is required (a node label such as skiff.dev/hostname or zone)",
                        );
                    }
                    if t.label_selector.is_empty() {
                        self.err(
                            format!("{tp}.labelSelector"),
                            "must name at least one label (the pods to be near or away from)",
                        );
                    }
                }
            }
        }
        for (i, c) in spec.topology_spread_constraints.iter().enumerate() {
            let cp = format!("{path}.topologySpreadConstraints[{i}]");
            if c.max_skew == 0 {
                self.err(format!("{cp}.maxSkew"), "must be at least 1");
            }
            if c.topology_key.is_empty() {
                self.err(
                    format!("{cp}.topologyKey"),
                    "is required (a node label such as zone)",
                );
            }
            if c.label_selector.is_empty() {
                self.err(
                    format!("{cp}.labelSelector"),
                    "must name at least one label (the pods to spread, e.g. app: web)",
                );
            }
        }
    }

    fn node_term(&mut self, path: &str, t: &crate::NodeSelectorTerm) {
        if t.match_expressions.is_empty() {
            self.err(
                format!("{path}.matchExpressions"),
                "must list at least one expression",
            );
        }
        for (j, e) in t.match_expressions.iter().enumerate() {
            let ep = format!("{path}.matchExpressions[{j}]");
            if e.key.is_empty() {
                self.err(format!("{ep}.key"), "is required");
            }
            match e.operator {
                crate::LabelOperator::In | crate::LabelOperator::NotIn if e.values.is_empty() => {
                    self.err(
                        format!("{ep}.values"),
                        "must list at least one value with In and NotIn",
                    );
                }
                crate::LabelOperator::Exists | crate::LabelOperator::DoesNotExist if !e.values.is_empty() => {
                    self.err(
                        format!("{ep}.values"),
                        "must be empty with Exists and DoesNotExist",
                    );
                }
                _ => {}
            }
        }
    }

    fn oci(&mut self, cp: &str, c: &crate::Component, o: &crate::OciSpec) {
        if let Err(why) = ImageRef::parse(&o.image) {
            self.err(format!("{cp}.oci.image"), format!("{:?} {why}", o.image));
        }
        if o.command
            .as_ref()
            .is_some_and(|c| c.is_empty() || c[0].is_empty())
        {
            self.err(
                format!("{cp}.oci.command"),
                "is empty: give the program and its arguments, or omit command to run the image's entrypoint",
            );
        }
        if let Some(w) = &o.working_dir
            && !w.starts_with('/')
        {
            self.err(
                format!("{cp}.oci.workingDir"),
                format!("{w:?} must be an absolute path"),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, v) in o.volumes.iter().enumerate() {
            if !v.starts_with('/') || v == "/" || v.split('/').any(|p| p == "..") {
                self.err(
                    format!("{cp}.oci.volumes[{j}]"),
                    format!("{v:?} must be an absolute directory below / without \"..\" (e.g. /tmp)"),
                );
            } else if !seen.insert(v.trim_end_matches('/')) {
                self.err(
                    format!("{cp}.oci.volumes[{j}]"),
                    format!("duplicate volume {v:?}"),
                );
            }
        }
        if let Some(m) = c.resources.memory
            && m.0 < 4 << 20
        {
            self.err(
                format!("{cp}.resources.memory"),
                format!("{m} is too little for a container: use at least 4Mi"),
            );
        }
        if c.resources.fuel.is_some() {
            self.err(
                format!("{cp}.resources.fuel"),
                "applies to wasm components only: remove it from the container",
            );
        }
        if !c.capabilities.outbound.is_empty() {
            self.err(
                format!("{cp}.capabilities.outbound"),
                "outbound grants apply to wasm components only: a container shares the node's network (grants for containers, through a node-local proxy, are not built yet)",
            );
        }
        if !c.capabilities.key_value.is_empty() {
            self.err(
                format!("{cp}.capabilities.keyValue"),
                "key-value stores are opened through wasi:keyvalue by wasm components only: a container reaches them through the API",
            );
        }
        if !c.config.is_empty() {
            self.err(
                format!("{cp}.config"),
                "is read through wasi:config by wasm components only: pass a container's settings in env",
            );
        }
    }

    fn pod_spec(&mut self, path: &str, spec: &PodSpec) {
        self.placement(path, spec);
        if spec.components.is_empty() {
            self.err(format!("{path}.components"), "must list at least one component");
        }
        let mut seen = BTreeSet::new();
        for (i, c) in spec.components.iter().enumerate() {
            let cp = format!("{path}.components[{i}]");
            if c.name.is_empty() {
                self.err(format!("{cp}.name"), "is required (a DNS label such as \"web\")");
            } else {
                self.dns_label(&format!("{cp}.name"), &c.name, "component name");
                if !seen.insert(c.name.as_str()) {
                    self.err(
                        format!("{cp}.name"),
                        format!("duplicate component name {:?}", c.name),
                    );
                }
            }
            if let Some(o) = &c.oci {
                self.oci(&cp, c, o);
            }
            match &c.wasm {
                None if c.oci.is_some() => {}
                None => self.err(
                    format!("{cp}.wasm"),
                    "missing: every component needs a wasm artifact (wasm.path, wasm.digest, wasm.url with digest, or wasm.image) or an OCI image (oci.image)",
                ),
                Some(_) if c.oci.is_some() => self.err(
                    cp.clone(),
                    "sets both wasm and oci: a component is either a wasm component or a container; split it into two components",
                ),
                Some(w) => {
                    let sources = [w.path.is_some(), w.url.is_some(), w.image.is_some()];
                    match (sources.iter().filter(|b| **b).count(), w.digest.is_some()) {
                        (0, false) => self.err(
                            format!("{cp}.wasm"),
                            "no artifact: set one of path (a local .wasm file), digest (sha256:..., \
                             from `skiff push`), url with digest, or image (an OCI reference)",
                        ),
                        (0, true) | (1, _) => {}
                        _ => self.err(
                            format!("{cp}.wasm"),
                            "set only one of path, url and image: they are alternative artifact sources",
                        ),
                    }
                    if w.path.is_some() && w.digest.is_some() {
                        self.err(
                            format!("{cp}.wasm.digest"),
                            "cannot be combined with path: `skiff apply` computes the digest of the \
                             local file; remove one of them",
                        );
                    }
                    if let Some(d) = &w.digest
                        && !is_sha256_digest(d)
                    {
                        self.err(
                            format!("{cp}.wasm.digest"),
                            format!(
                                "{d:?} is not a digest: expected sha256: followed by 64 lowercase hex digits"
                            ),
                        );
                    }
                    if let Some(u) = &w.url {
                        if !(u.starts_with("http://") || u.starts_with("https://")) {
                            self.err(
                                format!("{cp}.wasm.url"),
                                format!("{u:?} must be an http:// or https:// URL"),
                            );
                        }
                        if w.digest.is_none() {
                            self.err(
                                format!("{cp}.wasm.url"),
                                "has no pinned digest: add digest: sha256:<hex of the file> next to \
                                 url (print it with `sha256sum FILE`), so a node refuses bytes that \
                                 changed",
                            );
                        }
                    }
                    if let Some(i) = &w.image {
                        match ImageRef::parse(i) {
                            Err(why) => self.err(format!("{cp}.wasm.image"), format!("{i:?} {why}")),
                            Ok(r) if r.digest.is_none() && w.digest.is_none() => self.err(
                                format!("{cp}.wasm.image"),
                                format!(
                                    "{i:?} is not pinned: append @sha256:<manifest digest> to the \
                                     reference or add digest: sha256:<hex of the component>"
                                ),
                            ),
                            Ok(_) => {}
                        }
                    }
                    if let Some(p) = &w.path
                        && p.trim().is_empty()
                    {
                        self.err(
                            format!("{cp}.wasm.path"),
                            "is empty: give the path of a .wasm file",
                        );
                    }
                }
            }
            for (field, vars) in [("env", &c.env), ("config", &c.config)] {
                let mut seen = BTreeSet::new();
                for (j, e) in vars.iter().enumerate() {
                    if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') {
                        self.err(
                            format!("{cp}.{field}[{j}].name"),
                            format!("{:?} is not a valid variable name", e.name),
                        );
                    } else if !seen.insert(e.name.as_str()) {
                        self.err(
                            format!("{cp}.{field}[{j}].name"),
                            format!("duplicate variable {:?}", e.name),
                        );
                    }
                    if let Some(from) = &e.value_from {
                        self.env_source(&format!("{cp}.{field}[{j}]"), &e.value, from);
                    }
                }
            }
            if let Some(m) = c.resources.memory
                && (m.0 == 0 || m.0 > MAX_MEMORY)
            {
                self.err(
                    format!("{cp}.resources.memory"),
                    format!("{m} is out of range: use 64Ki to 4Gi"),
                );
            }
            if let Some(m) = c.resources.memory
                && m.0 > 0
                && m.0 < 64 << 10
            {
                self.err(
                    format!("{cp}.resources.memory"),
                    format!("{m} is below one wasm page: use at least 64Ki"),
                );
            }
            if let Some(t) = c.resources.timeout {
                if t.0.is_zero() {
                    self.err(format!("{cp}.resources.timeout"), "must be greater than zero");
                } else if t.0 > crate::Resources::MAX_TIMEOUT {
                    self.err(
                        format!("{cp}.resources.timeout"),
                        format!("{t} is too long: a request may take at most 1h; work that runs longer belongs in a Job"),
                    );
                }
            }
            for (name, probe, liveness) in [
                ("readinessProbe", &c.readiness_probe, false),
                ("livenessProbe", &c.liveness_probe, true),
            ] {
                for (field, message) in probe.iter().flat_map(|p| p.problems(liveness)) {
                    self.err(format!("{cp}.{name}.{field}"), message);
                }
                if i > 0 && probe.is_some() {
                    self.err(
                        format!("{cp}.{name}"),
                        "only the first component serves the pod's traffic and can be probed: move the probe to components[0]",
                    );
                }
            }
            let mut stores = BTreeSet::new();
            for (j, store) in c.capabilities.key_value.iter().enumerate() {
                let at = format!("{cp}.capabilities.keyValue[{j}]");
                if let Some(why) = crate::store_name_problem(store) {
                    self.err(at, why);
                } else if !stores.insert(store.as_str()) {
                    self.err(at, format!("duplicate key-value store {store:?}"));
                }
            }
            let mut grants = BTreeSet::new();
            for (j, grant) in c.capabilities.outbound.iter().enumerate() {
                let at = format!("{cp}.capabilities.outbound[{j}]");
                if let Err(e) = grant.parse::<crate::OutboundGrant>() {
                    self.err(at, e.to_string());
                } else if !grants.insert(grant.as_str()) {
                    self.err(at, format!("duplicate outbound grant {grant:?}"));
                }
            }
            if c.resources.fuel == Some(0) {
                self.err(
                    format!("{cp}.resources.fuel"),
                    "must be greater than zero (omit it for no fuel limit)",
                );
            }
        }
        if let Some(n) = &spec.node_name {
            self.dns_label(&format!("{path}.nodeName"), n, "node name");
        }
        self.labels(&format!("{path}.nodeSelector"), &spec.node_selector);
        if let Some(d) = &spec.disconnect {
            self.disconnect(&format!("{path}.disconnect"), d);
        }
        for (i, t) in spec.tolerations.iter().enumerate() {
            self.toleration(&format!("{path}.tolerations[{i}]"), t);
        }
    }

    fn disconnect(&mut self, path: &str, d: &DisconnectPolicy) {
        if let Some(DisconnectDelay::After(t)) = d.replace_after
            && t > MAX_DISCONNECT_DELAY
        {
            self.err(
                format!("{path}.replaceAfter"),
                format!(
                    "{} is longer than the {}-day limit: use `never` to keep the pod on its node",
                    DisconnectDelay::After(t),
                    MAX_DISCONNECT_DELAY.as_secs() / 86_400
                ),
            );
        }
        if let Some(DisconnectDelay::After(t)) = d.stop_after {
            if t < Duration::from_secs(1) {
                self.err(
                    format!("{path}.stopAfter"),
                    "must be at least 1s (a heartbeat can miss by that much); use `never` to keep the pod \
                     running",
                );
            } else if t > MAX_DISCONNECT_DELAY {
                self.err(
                    format!("{path}.stopAfter"),
                    format!(
                        "{} is longer than the {}-day limit: use `never` to keep the pod running",
                        DisconnectDelay::After(t),
                        MAX_DISCONNECT_DELAY.as_secs() / 86_400
                    ),
                );
            }
        }
    }

    fn toleration(&mut self, path: &str, t: &Toleration) {
        match t.operator {
            TolerationOperator::Equal if t.key.is_empty() => self.err(
                format!("{path}.key"),
                "is required with operator Equal (use operator Exists without a key to tolerate every taint)",
            ),
            TolerationOperator::Exists if !t.value.is_empty() => self.err(
                format!("{path}.value"),
                "must be empty with operator Exists (it matches any value): remove it or use Equal",
            ),
            _ => {}
        }
        if !t.key.is_empty()
            && let Some(why) = label_key_problem(&t.key)
        {
            self.err(format!("{path}.key"), format!("taint key {why}"));
        }
    }

    fn taints(&mut self, path: &str, taints: &[Taint]) {
        let mut seen = BTreeSet::new();
        for (i, t) in taints.iter().enumerate() {
            let tp = format!("{path}[{i}]");
            if t.key.is_empty() {
                self.err(
                    format!("{tp}.key"),
                    "is required (a label-style key such as \"dedicated\")",
                );
            } else if let Some(why) = label_key_problem(&t.key) {
                self.err(format!("{tp}.key"), format!("taint key {why}"));
            }
            if let Some(why) = label_value_problem(&t.value) {
                self.err(format!("{tp}.value"), format!("taint value {:?} {why}", t.value));
            }
            if !seen.insert((t.key.as_str(), t.effect)) {
                self.err(
                    tp,
                    format!(
                        "duplicate taint {}:{}: one taint per key and effect",
                        t.key, t.effect
                    ),
                );
            }
        }
    }

    fn selector(&mut self, path: &str, sel: &BTreeMap<String, String>, what: &str) {
        if sel.is_empty() {
            self.err(
                path,
                format!("is empty: a {what} must select pods by at least one label, e.g. app: web"),
            );
        }
        self.labels(path, sel);
    }
}

/// Why `s` is not a DNS label (RFC 1123), or `None` if it is one.
pub(crate) fn dns_label_problem(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some(format!("is {} characters long: at most 63 are allowed", s.len()));
    }
    if s.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {c:?}: use only lowercase letters, digits and '-'"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// What is wrong with a label `key=value`, if anything (the rules of `metadata.labels`).
pub fn label_problem(key: &str, value: &str) -> Option<String> {
    label_key_problem(key).or_else(|| label_value_problem(value).map(|w| format!("value {value:?} {w}")))
}

fn label_key_problem(k: &str) -> Option<String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || p.split('.').any(|l| dns_label_problem(l).is_some()))
    {
        return Some(format!(
            "{k:?} has an invalid prefix {p:?}: use a DNS name such as skiff.dev"
        ));
    }
    if name.is_empty() || name.len() > 63 {
        return Some(format!("{k:?} must have a name of 1 to 63 characters"));
    }
    label_value_problem(name).map(|w| format!("{k:?} {w}"))
}

fn label_value_problem(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("is longer than 63 characters".into());
    }
    if v.is_empty() {
        return None;
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Some(format!("contains {c:?}: use letters, digits, '-', '_' and '.'"));
    }
    let first = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let last = v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first || !last {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

impl Object {
    /// Checks the object's fields. A `wasm.path` is allowed: the CLI resolves it before sending.
    ///
    /// # Errors
    /// Every invalid field, with its path.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker { errors: Vec::new() };
        c.meta(self);
        match self {
            Object::Namespace(_) | Object::Endpoints(_) | Object::Event(_) => {}
            Object::Node(n) => c.taints("spec.taints", &n.spec.taints),
            Object::JoinToken(t) => c.join_token(t),
            Object::ApiToken(t) => c.api_token(t),
            Object::Role(r) => c.role(r),
            Object::Revocation(r) => c.revocation(r),
            Object::ResourceQuota(q) => c.resource_quota(q),
            Object::ConfigMap(m) => c.config_data(&m.data),
            Object::Secret(m) => c.config_data(&m.data),
            Object::Pod(p) => c.pod_spec("spec", &p.spec),
            Object::Deployment(d) => {
                let s = &d.spec;
                c.replicated(s.replicas, &s.selector.match_labels, &s.template, "Deployment");
                c.strategy(&s.strategy);
            }
            Object::ReplicaSet(r) => {
                let s = &r.spec;
                c.replicated(s.replicas, &s.selector.match_labels, &s.template, "ReplicaSet");
            }
            Object::DaemonSet(d) => c.daemon_set(&d.spec),
            Object::Job(j) => c.job("spec", &j.spec),
            Object::CronJob(cj) => c.cron_job(&cj.spec),
            Object::Function(f) => c.function(&f.spec),
            Object::Service(s) => {
                c.selector("spec.selector", &s.spec.selector, "service");
                for (i, p) in s.spec.ports.iter().enumerate() {
                    if !(1..=65535).contains(&p.port) {
                        c.err(
                            format!("spec.ports[{i}].port"),
                            format!("{} is not a port: use 1 to 65535", p.port),
                        );
                    }
                }
            }
            Object::HttpRoute(r) => {
                if r.spec.rules.is_empty() {
                    c.err("spec.rules", "must list at least one rule");
                }
                for (i, h) in r.spec.hostnames.iter().enumerate() {
                    if h.is_empty() || h.split('.').any(|l| l != "*" && dns_label_problem(l).is_some()) {
                        c.err(
                            format!("spec.hostnames[{i}]"),
                            format!("{h:?} is not a host name (e.g. hello.example.com)"),
                        );
                    }
                }
                for (i, rule) in r.spec.rules.iter().enumerate() {
                    let rp = format!("spec.rules[{i}]");
                    if !rule.path_prefix.starts_with('/') {
                        c.err(
                            format!("{rp}.pathPrefix"),
                            format!("{:?} must start with '/'", rule.path_prefix),
                        );
                    }
                    if rule.backends.is_empty() {
                        c.err(format!("{rp}.backends"), "must name at least one service");
                    }
                    for (j, b) in rule.backends.iter().enumerate() {
                        c.dns_label(&format!("{rp}.backends[{j}].service"), &b.service, "service name");
                        if b.weight < 0 {
                            c.err(
                                format!("{rp}.backends[{j}].weight"),
                                format!("{} is negative: use 0 or more", b.weight),
                            );
                        }
                    }
                    if rule.backends.iter().all(|b| b.weight == 0) && !rule.backends.is_empty() {
                        c.err(
                            format!("{rp}.backends"),
                            "every weight is 0: at least one backend must take traffic",
                        );
                    }
                }
            }
        }
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(c.errors))
        }
    }

    /// [`validate`](Self::validate), and also rejects client-side `wasm.path`s, which only the CLI
    /// can resolve: the server stores artifacts by digest.
    ///
    /// # Errors
    /// Every invalid field, with its path.
    pub fn validate_for_server(&self) -> Result<(), ValidationErrors> {
        let mut errors = match self.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.0,
        };
        for (path, c) in self.components() {
            if c.wasm.as_ref().is_some_and(|w| w.path.is_some()) {
                errors.push(FieldError {
                    path: format!("{path}.wasm.path"),
                    message: "local paths are resolved by `skiff apply`: upload the file \
                              (POST /api/v1/artifacts) and set wasm.digest instead"
                        .into(),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

fn fmt_map(m: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests;

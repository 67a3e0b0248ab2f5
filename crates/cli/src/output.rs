//! Tables, YAML and JSON for `get` and `describe`.
use std::fmt::Write;
use std::time::SystemTime;

use anyhow::Result;
use clap::ValueEnum;
use skiff_api::{Event, Kind, Object};

/// Output formats of `skiff get`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Columns.
    Table,
    /// More columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON (a list when there are several).
    Json,
}

/// `kind/name`, as kubectl prints it.
pub(crate) fn ref_of(o: &Object) -> String {
    format!("{}/{}", o.kind().as_str().to_lowercase(), o.meta().name)
}

fn age(o: &Object) -> String {
    since(o.meta().creation_timestamp.as_deref())
}

/// How long ago an RFC 3339 time was (`42s`, `5m`, `3h`, `2d`; `-` when absent).
fn since(time: Option<&str>) -> String {
    let Some(t) = time.and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
        return "-".into();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `http:/hello,event:orders,cron:*/5 * * * *` — what invokes a function, compactly.
fn trigger_summary(triggers: &[skiff_api::Trigger]) -> String {
    let parts: Vec<String> = triggers
        .iter()
        .map(|t| {
            if let Some(h) = &t.http {
                format!("http:{}", h.path)
            } else if let Some(c) = &t.cron {
                format!("cron:{}", c.schedule)
            } else if let Some(e) = &t.event {
                format!("event:{}", e.topic)
            } else if let Some(m) = &t.mqtt {
                format!("mqtt:{}", m.topic)
            } else {
                "?".into()
            }
        })
        .collect();
    parts.join(",")
}

fn columns(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut c = match kind {
        Kind::Pod => vec!["NAME", "READY", "STATUS", "RESTARTS", "NODE", "AGE"],
        Kind::Deployment => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "REVISION", "AGE"],
        Kind::ReplicaSet => vec!["NAME", "DESIRED", "CURRENT", "READY", "REVISION", "AGE"],
        Kind::DaemonSet => vec!["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AGE"],
        Kind::Job => vec!["NAME", "STATUS", "COMPLETIONS", "FAILED", "AGE"],
        Kind::CronJob => vec![
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        Kind::Function => vec!["NAME", "TRIGGERS", "READY", "DESIRED", "SCALE", "AGE"],
        Kind::Service => vec!["NAME", "SELECTOR", "AGE"],
        Kind::Endpoints => vec!["NAME", "ENDPOINTS", "AGE"],
        Kind::HttpRoute => vec!["NAME", "HOSTNAMES", "PATHS", "BACKENDS", "AGE"],
        Kind::Node => vec!["NAME", "STATUS", "ARCH", "AGE"],
        Kind::Namespace => vec!["NAME", "AGE"],
        Kind::JoinToken => vec!["ID", "EXPIRES", "DESCRIPTION", "AGE"],
        Kind::ApiToken => vec!["ID", "ROLE", "NAMESPACES", "EXPIRES", "DESCRIPTION", "AGE"],
        Kind::Role => vec!["NAME", "RULES", "AGE"],
        Kind::Revocation => vec!["IDENTITY", "REVOKED AT", "REASON"],
        Kind::ResourceQuota => vec!["NAME", "USED / HARD", "AGE"],
        Kind::Event => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        Kind::ConfigMap | Kind::Secret => vec!["NAME", "DATA", "AGE"],
    };
    if wide {
        match kind {
            Kind::Pod => c.extend(["REASON", "UID"]),
            Kind::Event => c.extend(["COUNT", "SOURCE"]),
            Kind::Node => c.extend(["ADDRESS", "MEMORY", "CPU", "RUNTIMES"]),
            _ => {}
        }
    }
    c
}

fn row(o: &Object, wide: bool) -> Vec<String> {
    let name = o.meta().name.clone();
    let mut r = match o {
        Object::Pod(p) => {
            // Like Kubernetes' STATUS: the reason while the pod waits or failed
            // (`Compiling`, `CompileError`, `CrashLoopBackOff`, …), else the phase.
            let status = match (&p.status.reason, p.status.phase) {
                (Some(r), skiff_api::PodPhase::Pending | skiff_api::PodPhase::Failed) => r.clone(),
                (Some(r), skiff_api::PodPhase::Running) if !p.status.ready => r.clone(),
                (_, phase) => format!("{phase:?}"),
            };
            vec![
                name,
                format!("{}/1", u8::from(p.status.ready)),
                status,
                p.status.restarts.to_string(),
                p.spec.node_name.clone().unwrap_or_else(|| "<none>".into()),
                age(o),
            ]
        }
        Object::Event(e) => event_row(e),
        Object::Deployment(d) => vec![
            name,
            format!("{}/{}", d.status.ready_replicas, d.spec.replicas),
            d.status.updated_replicas.to_string(),
            d.status.ready_replicas.to_string(),
            d.status.revision.map_or_else(|| "-".into(), |r| r.to_string()),
            age(o),
        ],
        Object::DaemonSet(d) => vec![
            name,
            d.status.desired_number_scheduled.to_string(),
            d.status.current_number_scheduled.to_string(),
            d.status.number_ready.to_string(),
            d.status.updated_number_scheduled.to_string(),
            age(o),
        ],
        Object::Job(j) => vec![
            name,
            j.status.finished().map_or_else(
                || {
                    if j.status.active > 0 {
                        "Running".to_owned()
                    } else {
                        "Pending".to_owned()
                    }
                },
                |c| {
                    if c.type_ == skiff_api::JOB_COMPLETE {
                        "Complete".to_owned()
                    } else {
                        format!("Failed ({})", c.reason)
                    }
                },
            ),
            format!("{}/{}", j.status.succeeded, j.spec.completions()),
            j.status.failed.to_string(),
            age(o),
        ],
        Object::CronJob(c) => vec![
            name,
            c.spec.schedule.clone(),
            c.spec.time_zone.clone().unwrap_or_else(|| "UTC".into()),
            c.spec.suspend.to_string(),
            c.status.active.len().to_string(),
            since(c.status.last_schedule_time.as_deref()),
            age(o),
        ],
        Object::Function(f) => vec![
            name,
            trigger_summary(&f.spec.triggers),
            format!("{}/{}", f.status.ready_replicas, f.status.replicas),
            f.status.desired_replicas.to_string(),
            format!("{}-{}", f.spec.min_scale, f.spec.max_scale_or_default()),
            age(o),
        ],
        Object::ReplicaSet(r) => vec![
            name,
            r.spec.replicas.to_string(),
            r.status.replicas.to_string(),
            r.status.ready_replicas.to_string(),
            r.revision().to_string(),
            age(o),
        ],
        Object::Service(s) => {
            let sel: Vec<String> = s.spec.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![name, sel.join(","), age(o)]
        }
        Object::Endpoints(e) => {
            let eps: Vec<String> = e
                .endpoints
                .iter()
                .map(|a| format!("{}@{}{}", a.pod, a.node, if a.ready { "" } else { "(not ready)" }))
                .collect();
            vec![
                name,
                if eps.is_empty() {
                    "<none>".into()
                } else {
                    eps.join(",")
                },
                age(o),
            ]
        }
        Object::HttpRoute(r) => {
            let hosts = if r.spec.hostnames.is_empty() {
                "*".into()
            } else {
                r.spec.hostnames.join(",")
            };
            let paths: Vec<&str> = r.spec.rules.iter().map(|x| x.path_prefix.as_str()).collect();
            let backends: Vec<String> = r
                .spec
                .rules
                .iter()
                .flat_map(|x| x.backends.iter().map(|b| format!("{}:{}", b.service, b.weight)))
                .collect();
            vec![name, hosts, paths.join(","), backends.join(","), age(o)]
        }
        Object::Node(n) => vec![
            name,
            match (n.status.ready, n.spec.unschedulable) {
                (true, false) => "Ready".into(),
                (true, true) => "Ready,SchedulingDisabled".into(),
                (false, false) => "NotReady".into(),
                (false, true) => "NotReady,SchedulingDisabled".into(),
            },
            n.metadata
                .labels
                .get(skiff_api::ARCH_LABEL)
                .cloned()
                .unwrap_or_default(),
            age(o),
        ],
        Object::Namespace(_) => vec![name, age(o)],
        Object::ConfigMap(c) => vec![name, c.data.len().to_string(), age(o)],
        Object::Secret(c) => vec![name, c.data.len().to_string(), age(o)],
        Object::JoinToken(t) => vec![
            name,
            t.spec.expires.clone().unwrap_or_else(|| "never".into()),
            or_dash(&t.spec.description),
            age(o),
        ],
        Object::ApiToken(t) => vec![
            name,
            t.spec.role.clone(),
            if t.spec.namespaces.is_empty() {
                "*".into()
            } else {
                t.spec.namespaces.join(",")
            },
            t.spec.expires.clone().unwrap_or_else(|| "never".into()),
            or_dash(&t.spec.description),
            age(o),
        ],
        Object::ResourceQuota(q) => vec![name, quota_usage(q), age(o)],
        Object::Revocation(r) => vec![
            r.spec.identity.clone(),
            r.spec.revoked_at.clone(),
            or_dash(&r.spec.reason),
        ],
        Object::Role(r) => vec![
            name,
            r.spec
                .rules
                .iter()
                .map(|r| format!("{}:{}", r.verbs.join(","), r.resources.join(",")))
                .collect::<Vec<_>>()
                .join(" "),
            age(o),
        ],
    };
    if wide {
        match o {
            Object::Pod(p) => r.extend([
                p.status.message.clone().unwrap_or_else(|| "-".into()),
                p.metadata.uid.clone().unwrap_or_default(),
            ]),
            Object::Event(e) => r.extend([e.count.to_string(), e.source.component.clone()]),
            Object::Node(n) => r.extend([
                n.status.address.clone(),
                n.status.capacity.memory.to_string(),
                n.status.capacity.cpu.to_string(),
                n.status.runtimes.join(","),
            ]),
            _ => {}
        }
    }
    r
}

/// LAST SEEN, TYPE, REASON, OBJECT, MESSAGE of an event (`x3` after the age when it repeated).
fn event_row(e: &Event) -> Vec<String> {
    let mut seen = since(e.last_timestamp.as_deref());
    if e.count > 1 {
        seen.push_str(&format!(" (x{})", e.count));
    }
    vec![
        seen,
        format!("{:?}", e.type_),
        e.reason.clone(),
        format!(
            "{}/{}",
            e.involved_object.kind.to_lowercase(),
            e.involved_object.name
        ),
        e.message.clone(),
    ]
}

/// Events oldest first (by when they last happened).
fn by_last_seen(events: &mut [Event]) {
    events.sort_by_key(|e| {
        e.last_timestamp
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    });
}

/// Sorts a listing of events oldest first, as they happened.
pub(crate) fn sort_events(items: &mut [Object]) {
    items.sort_by_key(|o| match o {
        Object::Event(e) => e
            .last_timestamp
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        _ => None,
    });
}

pub(crate) fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    out
}

/// Renders objects of one kind.
/// Renders objects: one named object as itself, a listing (`single` false) as a `List` with
/// `items` in JSON, documents in YAML, rows in a table.
pub(crate) fn render(
    kind: Kind,
    items: &[Object],
    format: Format,
    with_ns: bool,
    single: bool,
) -> Result<String> {
    Ok(match format {
        Format::Json if single && items.len() == 1 => serde_json::to_string_pretty(&items[0])? + "\n",
        Format::Json => {
            let list =
                serde_json::json!({"apiVersion": skiff_api::API_VERSION, "kind": "List", "items": items});
            serde_json::to_string_pretty(&list)? + "\n"
        }
        Format::Yaml => {
            let docs: Result<Vec<String>, _> = items.iter().map(serde_saphyr::to_string).collect();
            docs?.join("---\n")
        }
        Format::Table | Format::Wide => {
            if items.is_empty() {
                return Ok(String::new());
            }
            let wide = matches!(format, Format::Wide);
            let ns_col = with_ns && kind.namespaced();
            let mut header: Vec<String> = columns(kind, wide).into_iter().map(String::from).collect();
            if ns_col {
                header.insert(0, "NAMESPACE".into());
            }
            let rows = items
                .iter()
                .map(|o| {
                    let mut r = row(o, wide);
                    if ns_col {
                        r.insert(0, o.namespace().unwrap_or("").to_owned());
                    }
                    r
                })
                .collect();
            table(header, rows)
        }
    })
}

/// `skiff describe`: the object as YAML, then what relates to it, then its events.
pub(crate) fn describe(o: &Object, related: &[Object], events: &[Event]) -> Result<String> {
    let mut out = String::new();
    let _ = writeln!(out, "Name:       {}", o.meta().name);
    if let Some(ns) = o.namespace() {
        let _ = writeln!(out, "Namespace:  {ns}");
    }
    let _ = writeln!(out, "Kind:       {}", o.kind());
    if let Object::Pod(p) = o {
        let _ = writeln!(
            out,
            "Node:       {}",
            p.spec.node_name.as_deref().unwrap_or("<none>")
        );
        let _ = writeln!(out, "Phase:      {:?}", p.status.phase);
        if let Some(r) = &p.status.reason {
            let _ = writeln!(out, "Reason:     {r}");
        }
        if let Some(m) = &p.status.message {
            let _ = writeln!(out, "Message:    {m}");
        }
        if let Some(s) = &p.status.scheduling {
            let _ = writeln!(out, "Scheduling: {} — {}", s.result, s.message);
            for (node, why) in &s.rejected {
                let _ = writeln!(out, "  rejected {node}: {why}");
            }
            for (node, score) in &s.scores {
                let _ = writeln!(out, "  score    {node}: {score}");
            }
        }
    }
    if let Object::Node(n) = o {
        let _ = writeln!(
            out,
            "Schedulable: {}",
            if n.spec.unschedulable {
                "no (cordoned)"
            } else {
                "yes"
            }
        );
        let conditions = n.conditions();
        if !conditions.is_empty() {
            let _ = writeln!(out, "Conditions:");
            for c in conditions {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<8} {:<16} {}{}",
                    c.type_,
                    format!("{:?}", c.status),
                    c.reason,
                    c.message,
                    c.last_transition_time
                        .map(|t| format!(" (since {t})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    describe_grants(&mut out, o);
    let _ = writeln!(out, "---");
    out.push_str(&serde_saphyr::to_string(o)?);
    if !related.is_empty() {
        let _ = writeln!(out, "---\nRelated:");
        for r in related {
            let _ = writeln!(out, "  {}", ref_of(r));
            if let Object::Endpoints(e) = r {
                for a in &e.endpoints {
                    let _ = writeln!(
                        out,
                        "    {} on {} ({}) ready={}",
                        a.pod, a.node, a.address, a.ready
                    );
                }
            }
        }
    }
    if !events.is_empty() {
        let mut events = events.to_vec();
        by_last_seen(&mut events);
        let _ = writeln!(out, "---\nEvents:");
        let header = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
            .map(String::from)
            .to_vec();
        let rows = events.iter().map(event_row).collect();
        for line in table(header, rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    Ok(out)
}

/// The capabilities each component of `o`'s pod spec is granted, and a pod's denied requests.
fn describe_grants(out: &mut String, o: &Object) {
    let Some((_, spec)) = o.pod_spec() else {
        return;
    };
    let granted: Vec<_> = spec
        .components
        .iter()
        .filter(|c| !c.capabilities.is_empty())
        .collect();
    if !granted.is_empty() {
        let _ = writeln!(out, "Grants:");
        for c in granted {
            let caps = &c.capabilities;
            if !caps.outbound.is_empty() {
                let _ = writeln!(out, "  {:<12} outbound  {}", c.name, caps.outbound.join(", "));
            }
            if !caps.key_value.is_empty() {
                let _ = writeln!(out, "  {:<12} keyValue  {}", c.name, caps.key_value.join(", "));
            }
        }
    }
    if let Object::Pod(p) = o
        && let Some(d) = &p.status.denied_outbound
    {
        let _ = writeln!(
            out,
            "Denied:     {} outbound requests (latest from {}: missing {})",
            d.count, d.component, d.missing
        );
    }
}

/// Replaces every value of a Secret by `<redacted, N bytes>` (other objects are left as they are).
pub(crate) fn redact(o: &mut Object) {
    if let Object::Secret(s) = o {
        for v in s.data.values_mut() {
            *v = format!("<redacted, {} bytes>", v.len());
        }
    }
}

/// `s`, or `-` when it is empty.
fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_owned() }
}

/// `pods: 2/5, requests.memory: 128Mi/1Gi` for a quota read from the server.
fn quota_usage(q: &skiff_api::ResourceQuota) -> String {
    let used = q.status.as_ref().map(|s| &s.used);
    q.spec
        .hard
        .limited()
        .map(|(r, hard)| {
            let u = used.and_then(|u| u.get(r)).map_or("?".to_owned(), |n| r.show(n));
            format!("{r}: {u}/{}", r.show(hard))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_every_format() {
        let mut o: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "skiff.dev/v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"},
            "data": {"password": "hunter2-marker"}
        }))
        .unwrap();
        let plain = render(Kind::Secret, std::slice::from_ref(&o), Format::Yaml, false, true).unwrap();
        assert!(plain.contains("hunter2-marker"), "{plain}");
        redact(&mut o);
        for f in [Format::Yaml, Format::Json, Format::Table] {
            let out = render(Kind::Secret, std::slice::from_ref(&o), f, false, true).unwrap();
            assert!(!out.contains("hunter2-marker"), "{out}");
        }
        let yaml = render(Kind::Secret, std::slice::from_ref(&o), Format::Yaml, false, true).unwrap();
        assert!(yaml.contains("<redacted, 14 bytes>"), "{yaml}");
        let described = describe(&o, &[], &[]).unwrap();
        assert!(
            described.contains("<redacted, 14 bytes>") && !described.contains("hunter2"),
            "{described}"
        );
    }
}

//! OpenAPI schemas of the types whose wire form serde writes by hand (quantities, durations,
//! codes): what the derived schemas of every other type refer to. Each says what the parser
//! accepts, so a client generated from the document writes values the server reads.
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::access::{ApiToken, Revocation, Role};
use crate::batch::{CronJob, DaemonSet, Job};
use crate::config::{ConfigMap, Secret};
use crate::error_code::ErrorCode;
use crate::event::Event;
use crate::function::Function;
use crate::kind::Kind;
use crate::meta::{API_VERSION, ApiVersion};
use crate::node::{Namespace, Node};
use crate::object::Object;
use crate::pod::Pod;
use crate::policy::DisconnectDelay;
use crate::quantity::{ByteSize, DurationValue, Millicores};
use crate::quota::ResourceQuota;
use crate::rollout::IntOrPercent;
use crate::service::{Endpoints, HttpRoute, Service};
use crate::token::JoinToken;
use crate::workload::{Deployment, ReplicaSet};

/// A duration with units, as `humantime` reads it: one or more number-unit pairs.
const DURATION_PATTERN: &str = r"^([0-9]+ ?(ns|us|ms|s|m|h|d|w))+$";

fn text(description: &str, pattern: Option<&str>, examples: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .examples(examples.iter().copied())
}

fn whole(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .description(Some(description))
}

/// Implements [`ToSchema`] for `$ty` with the schema `$schema` builds.
macro_rules! schema {
    ($ty:ty, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                Schema::from($schema).into()
            }
        }
        impl ToSchema for $ty {}
    };
}

schema!(
    ApiVersion,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The API version: only this one is served."))
        .enum_values(Some([API_VERSION]))
);

schema!(
    DurationValue,
    text(
        "A duration with units (`250ms`, `30s`, `1m30s`, `2h`, `7d`), at most 366 days.",
        Some(DURATION_PATTERN),
        &["30s", "1m30s"],
    )
);

schema!(
    DisconnectDelay,
    text(
        "A duration with units (`30s`, `10m`), or `never`.",
        Some(r"^(never|([0-9]+ ?(ns|us|ms|s|m|h|d|w))+)$"),
        &["5m", "never"],
    )
);

schema!(
    ByteSize,
    OneOfBuilder::new()
        .description(Some(
            "A number of bytes: a whole number, or one with a unit (`Ki`, `Mi`, `Gi`, `Ti` are \
             powers of 1024; `K`, `M`, `G` of 1000).",
        ))
        .item(whole("Bytes."))
        .item(text(
            "Bytes with a unit.",
            Some(r"^[0-9]+(Ki|Mi|Gi|Ti|K|k|M|G)?$"),
            &["64Mi", "1Gi"],
        ))
);

schema!(
    Millicores,
    OneOfBuilder::new()
        .description(Some(
            "CPU: whole cores (`2`), a fraction (`0.5`) or millicores (`250m`)."
        ))
        .item(whole("Whole cores."))
        .item(text(
            "Cores or millicores.",
            Some(r"^([0-9]+m|[0-9]*\.?[0-9]{1,3}|[0-9]+)$"),
            &["250m", "0.5"],
        ))
);

schema!(
    IntOrPercent,
    OneOfBuilder::new()
        .description(Some("A number of pods (`2`) or a share of the replicas (`25%`)."))
        .item(whole("Pods."))
        .item(text(
            "A percentage, 0 to 100.",
            Some(r"^([0-9]|[1-9][0-9]|100)%$"),
            &["25%"],
        ))
);

schema!(
    ErrorCode,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "What went wrong, for programs to branch on; a newer server may send a code not \
             listed here.",
        ))
        .enum_values(Some(ErrorCode::ALL.iter().map(ErrorCode::as_str)))
);

/// A schema and its name in the document's components.
pub type NamedSchema = (String, RefOr<Schema>);

/// The schema of `kind`'s objects as they travel: the kind's type with its `kind` tag, named
/// as the kind (`Deployment`, `HTTPRoute`); then every schema it refers to.
pub fn kind_schema(kind: Kind) -> (NamedSchema, Vec<NamedSchema>) {
    match kind {
        Kind::Namespace => tagged::<Namespace>(kind),
        Kind::Node => tagged::<Node>(kind),
        Kind::Pod => tagged::<Pod>(kind),
        Kind::Deployment => tagged::<Deployment>(kind),
        Kind::ReplicaSet => tagged::<ReplicaSet>(kind),
        Kind::Service => tagged::<Service>(kind),
        Kind::Endpoints => tagged::<Endpoints>(kind),
        Kind::HttpRoute => tagged::<HttpRoute>(kind),
        Kind::JoinToken => tagged::<JoinToken>(kind),
        Kind::Event => tagged::<Event>(kind),
        Kind::ConfigMap => tagged::<ConfigMap>(kind),
        Kind::Secret => tagged::<Secret>(kind),
        Kind::DaemonSet => tagged::<DaemonSet>(kind),
        Kind::Job => tagged::<Job>(kind),
        Kind::CronJob => tagged::<CronJob>(kind),
        Kind::Function => tagged::<Function>(kind),
        Kind::Role => tagged::<Role>(kind),
        Kind::ApiToken => tagged::<ApiToken>(kind),
        Kind::Revocation => tagged::<Revocation>(kind),
        Kind::ResourceQuota => tagged::<ResourceQuota>(kind),
    }
}

fn tagged<T: ToSchema>(kind: Kind) -> (NamedSchema, Vec<NamedSchema>) {
    let mut schema = T::schema();
    if let RefOr::T(Schema::Object(o)) = &mut schema {
        let tag = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The kind of object."))
            .enum_values(Some([kind.as_str()]));
        o.properties.insert("kind".into(), Schema::from(tag).into());
        o.required.insert(0, "kind".into());
    }
    let mut refs = Vec::new();
    T::schemas(&mut refs);
    ((kind.as_str().to_owned(), schema), refs)
}

/// A reference to the component named `name`.
fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

impl PartialSchema for Object {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some("Any object, told apart by its `kind`."));
        for kind in Kind::ALL {
            one_of = one_of.item(reference(kind.as_str()));
        }
        Schema::from(one_of.discriminator(Some(Discriminator::new("kind")))).into()
    }
}

impl ToSchema for Object {
    fn schemas(out: &mut Vec<NamedSchema>) {
        for kind in Kind::ALL {
            let (own, refs) = kind_schema(kind);
            out.push(own);
            out.extend(refs);
        }
    }
}

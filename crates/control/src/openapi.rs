//! `GET /openapi.json`: the API described as an OpenAPI 3.1 document.
//!
//! Built from the real parts, never written by hand: the schemas are derived from the wire
//! types of `skiff-api` (their serde attributes and doc comments), and the object routes are
//! made from [`Kind::ALL`] (each kind's plural, scope and whether users write it), so a new
//! kind or field appears here by itself. The other routes are listed in [`other_routes`]; a
//! test holds every route the router serves against this document.
use skiff_api::{ErrorBody, Kind, NamedSchema, Object};
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref,
    RefOr, Required,
};

mod other_routes;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`skiff token create`) or the admin token in the state \
                     directory; client certificates are accepted too.",
                ))
                .build(),
        ),
    );
    for kind in Kind::ALL {
        for (path, method, op) in kind_routes(kind) {
            paths = paths.path(path, PathItem::new(method, op));
        }
    }
    for (path, method, op) in other_routes::routes() {
        paths = paths.path(path, PathItem::new(method, op));
    }
    for (name, schema) in component_schemas() {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Skiff API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The desired-state API of a Skiff cluster. Every error answer is an \
                     `ErrorBody`. Lists also stream changes as newline-delimited `WatchEvent`s \
                     with `?watch=true` (see docs/api.md).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .security(Some([SecurityRequirement::new(BEARER, Vec::<String>::new())]))
        .build()
}

/// Every schema the document's routes refer to, by name. A name may come more than once (each
/// type that refers to it adds it), always with the same schema.
pub fn component_schemas() -> Vec<NamedSchema> {
    let mut schemas = Vec::new();
    add_schema::<ErrorBody>(&mut schemas);
    add_schema::<Object>(&mut schemas);
    for kind in Kind::ALL {
        let (own, refs) = skiff_api::kind_schema(kind);
        schemas.push(own);
        schemas.extend(refs);
        schemas.push((list_name(kind), list_schema(kind)));
    }
    other_routes::schemas(&mut schemas);
    schemas
}

/// The document as served, made once.
pub(crate) fn document_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"the document did not serialize: {e}\"}}"))
    })
}

/// A route: its path template, method and operation.
pub(crate) type Route = (String, HttpMethod, Operation);

/// The routes of one kind's objects.
fn kind_routes(kind: Kind) -> Vec<Route> {
    let plural = kind.plural();
    let name = kind.as_str();
    let (collection, base) = if !kind.namespaced() {
        (format!("/api/v1/{plural}"), Vec::new())
    } else {
        (
            format!("/api/v1/namespaces/{{namespace}}/{plural}"),
            vec![path_param("namespace", "The namespace.")],
        )
    };
    let item = format!("{collection}/{{name}}");
    let op = |verb: &str, summary: String, params: &[Parameter]| {
        operation(plural, &format!("{verb}{name}"), &summary, params)
    };
    let list = [base.clone(), list_params()].concat();
    let named = [
        base.clone(),
        vec![path_param("name", &format!("The {name}'s name."))],
    ]
    .concat();
    let read = [named.clone(), vec![consistency_param()]].concat();
    let mut routes: Vec<Route> = vec![
        (
            collection.clone(),
            HttpMethod::Get,
            op("list", format!("List {name} objects"), &list)
                .response("200", json_response("The objects", reference(&list_name(kind))))
                .build(),
        ),
        (
            item.clone(),
            HttpMethod::Get,
            op("read", format!("Read a {name}"), &read)
                .response("200", json_response("The object", reference(name)))
                .build(),
        ),
    ];
    // A namespace has no status of its own (its path is taken by the namespace's collections).
    if kind != Kind::Namespace {
        routes.push((
            format!("{item}/status"),
            HttpMethod::Put,
            op("replaceStatus", format!("Replace a {name}'s status"), &named)
                .description(Some("Written by Skiff's agents and controllers."))
                .request_body(Some(json_body(reference(name))))
                .response("200", json_response("The stored object", reference(name)))
                .build(),
        ));
    }
    if kind.namespaced() {
        routes.push((
            format!("{item}/status"),
            HttpMethod::Get,
            op("readStatus", format!("Read a {name} with its status"), &named)
                .response("200", json_response("The object", reference(name)))
                .build(),
        ));
    }
    if kind == Kind::Pod {
        routes.push((
            format!("{item}/log"),
            HttpMethod::Get,
            op("readLog", "Read a pod's captured output".into(), &named)
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("The output, from the pod's node")
                        .content("text/plain", ContentBuilder::new().schema(Some(text())).build()),
                )
                .build(),
        ));
    }
    if kind.user_writable() {
        routes.extend([
            (
                collection,
                HttpMethod::Post,
                op("create", format!("Create a {name}"), &base)
                    .request_body(Some(json_body(reference(name))))
                    .response("201", json_response("The stored object", reference(name)))
                    .build(),
            ),
            (
                item.clone(),
                HttpMethod::Put,
                op("replace", format!("Replace a {name}"), &named)
                    .description(Some(
                        "Replaces the spec and metadata; the status is kept. A `resourceVersion` \
                         in the body must be the stored one.",
                    ))
                    .request_body(Some(json_body(reference(name))))
                    .response("200", json_response("The stored object", reference(name)))
                    .build(),
            ),
            (
                item,
                HttpMethod::Delete,
                op("delete", format!("Delete a {name}"), &named)
                    .response("200", json_response("The object as it was", reference(name)))
                    .build(),
            ),
        ]);
    }
    routes
}

/// An operation with the error answers every route has.
pub(crate) fn operation(tag: &str, id: &str, summary: &str, params: &[Parameter]) -> OperationBuilder {
    let mut b = OperationBuilder::new()
        .tag(tag)
        .operation_id(Some(id))
        .summary(Some(summary))
        .response("4XX", error_response())
        .response("5XX", error_response());
    for p in params {
        b = b.parameter(p.clone());
    }
    b
}

/// The name of the schema of a list of `kind`'s objects.
fn list_name(kind: Kind) -> String {
    format!("{}List", kind.as_str())
}

fn list_schema(kind: Kind) -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some(format!("{} objects at one revision.", kind.as_str())))
        .property(
            "resourceVersion",
            count("The revision the list was read at; watch from here to miss nothing."),
        )
        .required("resourceVersion")
        .property("items", array_of(kind.as_str()))
        .required("items")
        .into()
}

/// The query parameters of a list.
fn list_params() -> Vec<Parameter> {
    vec![
        query_param(
            "labelSelector",
            "Only objects whose labels match (`app=web,tier!=db`, `env in (a,b)`, `key`, `!key`).",
            text(),
        ),
        query_param(
            "fieldSelector",
            "Only objects whose fields match: `metadata.name=…`, `spec.nodeName=…`.",
            text(),
        ),
        query_param(
            "watch",
            "Stream changes as newline-delimited `WatchEvent`s instead of listing.",
            ObjectBuilder::new().schema_type(Type::Boolean).into(),
        ),
        query_param(
            "resourceVersion",
            "With `watch`: the revision to stream changes after.",
            count("A revision."),
        ),
        consistency_param(),
    ]
}

/// `?consistency=`.
pub(crate) fn consistency_param() -> Parameter {
    query_param(
        "consistency",
        "`linearizable` (default: the read sees every write acknowledged before it) or `stale` \
         (this member's state, without asking the leader).",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["linearizable", "stale"]))
            .into(),
    )
}

/// A path parameter; names and namespaces are DNS labels.
pub(crate) fn path_param(name: &str, description: &str) -> Parameter {
    let schema = if matches!(name, "name" | "namespace") {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
            .max_length(Some(63))
            .into()
    } else {
        text()
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An optional query parameter.
pub(crate) fn query_param(name: &str, description: &str, schema: RefOr<Schema>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A reference to the component named `name`.
pub(crate) fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// An array of the component named `name`.
pub(crate) fn array_of(name: &str) -> RefOr<Schema> {
    ArrayBuilder::new().items(reference(name)).build().into()
}

/// Any string.
pub(crate) fn text() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// A whole number ≥ 0.
pub(crate) fn count(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .description(Some(description))
        .into()
}

/// Any JSON object.
pub(crate) fn any_object(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from(Type::Object))
        .description(Some(description))
        .into()
}

/// A required JSON request body.
pub(crate) fn json_body(schema: RefOr<Schema>) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A JSON answer.
pub(crate) fn json_response(description: &str, schema: RefOr<Schema>) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new().schema(Some(schema)).build(),
    )
}

/// What every error answer carries.
pub(crate) fn error_response() -> ResponseBuilder {
    json_response("An error: what failed and what to do", reference("ErrorBody"))
}

/// Adds `T`'s schema, and the ones it refers to, to `out`.
pub(crate) fn add_schema<T: ToSchema>(out: &mut Vec<NamedSchema>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

//! The routes that are not an object kind's: key-value stores, topics, functions, artifacts,
//! apply, the cluster's members, backups, audit, joining, health.
use skiff_api::{
    KeyPage, KeyValueStore, MemberView, NamedSchema, NodeJoinRequest, NodeJoinResponse, NodeRenewRequest,
    TopicStatus,
};
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Required};

use super::{
    Route, add_schema, any_object, array_of, consistency_param, count, json_body, json_response,
    operation as op, path_param, query_param, reference, text,
};

/// Bytes, in and out.
fn bytes_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/octet-stream")
                .build(),
        ))
        .build()
}

fn bytes_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/octet-stream", bytes_content())
}

fn bytes_body() -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content("application/octet-stream", bytes_content())
        .build()
}

fn plain(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("text/plain", ContentBuilder::new().schema(Some(text())).build())
}

/// Routes anyone may call, without credentials.
fn public(b: OperationBuilder) -> OperationBuilder {
    b.securities(Some([SecurityRequirement::default()]))
}

/// Adds the schemas these routes use to `out`.
pub(super) fn schemas(out: &mut Vec<NamedSchema>) {
    add_schema::<TopicStatus>(out);
    add_schema::<KeyValueStore>(out);
    add_schema::<KeyPage>(out);
    add_schema::<MemberView>(out);
    add_schema::<NodeJoinRequest>(out);
    add_schema::<NodeRenewRequest>(out);
    add_schema::<NodeJoinResponse>(out);
}

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    let mut routes = keyvalue_routes();
    routes.extend(topic_routes());
    routes.extend(cluster_routes());
    routes
}

fn keyvalue_routes() -> Vec<Route> {
    let ns = path_param("namespace", "The namespace.");
    let store = path_param("store", "The store's name.");
    let key = path_param("key", "The key (may contain `/`).");
    let consistency = consistency_param();
    let page = [
        query_param("prefix", "Only keys that start with this.", text()),
        query_param(
            "after",
            "Only keys after this one (the last key of the previous page).",
            text(),
        ),
        query_param(
            "limit",
            "Most keys in the page (default and most 1000).",
            count("Keys."),
        ),
    ];
    let keys = "/api/v1/namespaces/{namespace}/keyvalue/{store}/keys/{key}";
    vec![
        (
            "/api/v1/keyvalue".into(),
            HttpMethod::Get,
            op(
                "keyvalue",
                "listAllStores",
                "List the key-value stores of every namespace",
                std::slice::from_ref(&consistency),
            )
            .response("200", json_response("The stores", array_of("KeyValueStore")))
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/keyvalue".into(),
            HttpMethod::Get,
            op(
                "keyvalue",
                "listStores",
                "List a namespace's key-value stores",
                &[ns.clone(), consistency.clone()],
            )
            .response("200", json_response("The stores", array_of("KeyValueStore")))
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/keyvalue/{store}".into(),
            HttpMethod::Get,
            op(
                "keyvalue",
                "listKeys",
                "List a store's keys, a page at a time",
                &[[ns.clone(), store.clone(), consistency.clone()].as_slice(), &page].concat(),
            )
            .response("200", json_response("A page of keys", reference("KeyPage")))
            .build(),
        ),
        (
            keys.into(),
            HttpMethod::Get,
            op(
                "keyvalue",
                "readValue",
                "Read a key's value",
                &[ns.clone(), store.clone(), key.clone(), consistency],
            )
            .response("200", bytes_response("The value's bytes"))
            .build(),
        ),
        (
            keys.into(),
            HttpMethod::Put,
            op(
                "keyvalue",
                "writeValue",
                "Set a key's value (the store is made on first write)",
                &[ns.clone(), store.clone(), key.clone()],
            )
            .request_body(Some(bytes_body()))
            .response("204", ResponseBuilder::new().description("Stored"))
            .build(),
        ),
        (
            keys.into(),
            HttpMethod::Delete,
            op(
                "keyvalue",
                "deleteValue",
                "Delete a key",
                &[ns.clone(), store.clone(), key.clone()],
            )
            .response(
                "204",
                ResponseBuilder::new().description("Deleted (or was not there)"),
            )
            .build(),
        ),
        (
            keys.into(),
            HttpMethod::Post,
            op(
                "keyvalue",
                "incrementValue",
                "Add to a counter (a missing key counts from 0)",
                &[ns, store, key],
            )
            .request_body(Some(json_body(
                ObjectBuilder::new()
                    .property(
                        "delta",
                        ObjectBuilder::new().schema_type(Type::Integer).format(Some(
                            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64),
                        )),
                    )
                    .required("delta")
                    .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                    .into(),
            )))
            .response(
                "200",
                json_response(
                    "The new value",
                    ObjectBuilder::new()
                        .property("value", ObjectBuilder::new().schema_type(Type::Integer))
                        .required("value")
                        .into(),
                ),
            )
            .build(),
        ),
    ]
}

fn topic_routes() -> Vec<Route> {
    let ns = path_param("namespace", "The namespace.");
    let topic = path_param("topic", "The topic's name.");
    let fname = path_param("name", "The function's name.");
    let consistency = consistency_param();
    vec![
        (
            "/api/v1/topics".into(),
            HttpMethod::Get,
            op(
                "functions",
                "listAllTopics",
                "List the topics of every namespace",
                std::slice::from_ref(&consistency),
            )
            .response("200", json_response("The topics", array_of("TopicStatus")))
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/topics".into(),
            HttpMethod::Get,
            op(
                "functions",
                "listTopics",
                "List a namespace's topics",
                &[ns.clone(), consistency.clone()],
            )
            .response("200", json_response("The topics", array_of("TopicStatus")))
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/topics/{topic}".into(),
            HttpMethod::Get,
            op(
                "functions",
                "readTopic",
                "Read a topic's backlog and deliveries",
                &[ns.clone(), topic.clone(), consistency.clone()],
            )
            .response("200", json_response("The topic", reference("TopicStatus")))
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/topics/{topic}/events".into(),
            HttpMethod::Get,
            op(
                "functions",
                "listTopicEvents",
                "List a topic's stored events from a sequence number",
                &[
                    ns.clone(),
                    topic.clone(),
                    consistency,
                    query_param("from", "The first sequence number.", count("A sequence number.")),
                    query_param("limit", "Most events (1 to 1000, default 100).", count("Events.")),
                ],
            )
            .response(
                "200",
                json_response("The events", any_object("`{topic, events: [{sequence, event}]}`")),
            )
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/topics/{topic}/events".into(),
            HttpMethod::Post,
            op(
                "functions",
                "publish",
                "Publish an event (the body is its data; `ce-*` headers its attributes)",
                &[ns.clone(), topic],
            )
            .request_body(Some(bytes_body()))
            .response(
                "201",
                json_response("Stored", any_object("Where the event was stored")),
            )
            .response(
                "200",
                json_response(
                    "A duplicate of a stored event (same `ce-id`)",
                    any_object("The stored event"),
                ),
            )
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/functions/{name}/invoke".into(),
            HttpMethod::Post,
            op(
                "functions",
                "invoke",
                "Call a function once and wait for its answer",
                &[ns.clone(), fname.clone()],
            )
            .request_body(Some(bytes_body()))
            .response("200", bytes_response("The function's answer, with its status"))
            .build(),
        ),
        (
            "/api/v1/namespaces/{namespace}/functions/{name}/activate".into(),
            HttpMethod::Post,
            op(
                "functions",
                "activate",
                "Start a function scaled to zero",
                &[ns, fname],
            )
            .response(
                "202",
                json_response("Activating", any_object("`{activated: name}`")),
            )
            .build(),
        ),
    ]
}

fn cluster_routes() -> Vec<Route> {
    let digest = path_param("digest", "`sha256:` and 64 hex digits.");
    let objects: utoipa::openapi::RefOr<Schema> = ObjectBuilder::new()
        .property("objects", array_of("Object"))
        .required("objects")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into();
    vec![
        (
            "/api/v1/apply".into(),
            HttpMethod::Post,
            op(
                "cluster",
                "apply",
                "Create or update many objects at once: all or none",
                &[],
            )
            .request_body(Some(json_body(objects.clone())))
            .response("200", json_response("The stored objects", objects))
            .build(),
        ),
        (
            "/api/v1/artifacts".into(),
            HttpMethod::Post,
            op("cluster", "uploadArtifact", "Store a WebAssembly component", &[])
                .request_body(Some(bytes_body()))
                .response(
                    "201",
                    json_response("Stored (or already stored)", any_object("`{digest, size}`")),
                )
                .build(),
        ),
        (
            "/api/v1/artifacts/{digest}".into(),
            HttpMethod::Get,
            op(
                "cluster",
                "downloadArtifact",
                "Read a stored component",
                std::slice::from_ref(&digest),
            )
            .response("200", bytes_response("The component's bytes"))
            .build(),
        ),
        (
            "/api/v1/artifacts/{digest}".into(),
            HttpMethod::Put,
            op(
                "cluster",
                "putArtifact",
                "Store a component under its digest (members copy them so)",
                &[digest],
            )
            .request_body(Some(bytes_body()))
            .response(
                "201",
                json_response("Stored (or already stored)", any_object("`{digest}`")),
            )
            .build(),
        ),
        (
            "/api/v1/cluster".into(),
            HttpMethod::Get,
            op(
                "cluster",
                "readCluster",
                "The cluster: its id, leader and this member",
                &[],
            )
            .response(
                "200",
                json_response("The cluster", any_object("The cluster as this member sees it")),
            )
            .build(),
        ),
        (
            "/api/v1/members".into(),
            HttpMethod::Get,
            op("cluster", "listMembers", "The control members", &[])
                .response("200", json_response("The members", array_of("MemberView")))
                .build(),
        ),
        (
            "/api/v1/members/{name}".into(),
            HttpMethod::Delete,
            op(
                "cluster",
                "removeMember",
                "Remove a control member",
                &[path_param("name", "The member's name.")],
            )
            .response(
                "200",
                json_response("The member as it was", reference("MemberView")),
            )
            .build(),
        ),
        (
            "/api/v1/snapshot".into(),
            HttpMethod::Get,
            op(
                "cluster",
                "backup",
                "A backup of the whole state (`skiff server --restore` reads it)",
                &[],
            )
            .response("200", bytes_response("The backup file"))
            .build(),
        ),
        (
            "/api/v1/audit".into(),
            HttpMethod::Get,
            op(
                "cluster",
                "listAudit",
                "This member's newest audit records, oldest first",
                &[query_param(
                    "limit",
                    "Most records (default 100).",
                    count("Records."),
                )],
            )
            .response(
                "200",
                json_response(
                    "The records",
                    ArrayBuilder::new()
                        .items(any_object("An audit record"))
                        .build()
                        .into(),
                ),
            )
            .build(),
        ),
        (
            "/api/v1/join".into(),
            HttpMethod::Post,
            public(op(
                "cluster",
                "join",
                "A node joins with a join token (HTTPS only)",
                &[],
            ))
            .request_body(Some(json_body(reference("NodeJoinRequest"))))
            .response(
                "200",
                json_response("The node's certificate", reference("NodeJoinResponse")),
            )
            .build(),
        ),
        (
            "/api/v1/renew".into(),
            HttpMethod::Post,
            op(
                "cluster",
                "renew",
                "A node renews its certificate (HTTPS, with its current one)",
                &[],
            )
            .request_body(Some(json_body(reference("NodeRenewRequest"))))
            .response(
                "200",
                json_response("The node's new certificate", reference("NodeJoinResponse")),
            )
            .build(),
        ),
        (
            "/healthz".into(),
            HttpMethod::Get,
            public(op("health", "healthz", "Whether the process answers", &[]))
                .response("200", plain("`ok`"))
                .build(),
        ),
        (
            "/readyz".into(),
            HttpMethod::Get,
            public(op(
                "health",
                "readyz",
                "Whether this member knows a leader and its Raft driver runs",
                &[],
            ))
            .response("200", plain("`ok`"))
            .build(),
        ),
        (
            "/openapi.json".into(),
            HttpMethod::Get,
            public(op("health", "openapi", "This document", &[]))
                .response(
                    "200",
                    json_response("The OpenAPI document", any_object("OpenAPI 3.1")),
                )
                .build(),
        ),
    ]
}

//! What the loader returns for valid input, and its limits.
use std::path::Path;

use skiff_api::{ByteSize, Kind, Object};
use skiff_manifest::{
    MAX_DOCUMENTS, MAX_FILE_BYTES, load_path, load_paths, load_str, load_str_in, set_digest,
};

const SERVICE: &str =
    "apiVersion: skiff.dev/v1\nkind: Service\nmetadata: {name: NAME}\nspec: {selector: {app: web}}\n";

fn digest() -> String {
    format!("sha256:{}", "0123456789abcdef".repeat(4))
}

#[test]
fn the_demo_loads_as_three_objects() {
    let docs = load_path(Path::new("tests/cases/demo.yaml")).unwrap();
    assert_eq!(docs.len(), 3);
    let Object::Deployment(d) = &docs[0].object else {
        panic!("first document is {:?}", docs[0].object.kind())
    };
    assert_eq!(d.metadata.name, "hello");
    assert_eq!(d.spec.replicas, 2);
    assert_eq!(d.spec.selector.match_labels["app"], "hello");
    let c = &d.spec.template.spec.components[0];
    assert_eq!(c.name, "web");
    assert_eq!(c.resources.memory, Some(ByteSize(32 << 20)));
    assert_eq!(c.env[0].value, "hello");
    assert_eq!(
        c.wasm.as_ref().and_then(|w| w.path.as_deref()),
        Some("hello.wasm")
    );
    let art = &docs[0].artifacts;
    assert_eq!(art.len(), 1);
    assert_eq!(art[0].component, 0);
    assert!(art[0].path.is_absolute());
    assert_eq!(
        art[0].path,
        std::fs::canonicalize("tests/cases/hello.wasm").unwrap()
    );
    let Object::Service(s) = &docs[1].object else {
        panic!("second document is not a Service")
    };
    assert_eq!(s.spec.ports[0].port, 80);
    let Object::HttpRoute(r) = &docs[2].object else {
        panic!("third document is not an HTTPRoute")
    };
    assert_eq!(r.spec.rules[0].backends[0].service, "hello");
    assert_eq!(r.spec.rules[0].backends[0].weight, 1);
    assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(docs.iter().all(|d| d.file == "tests/cases/demo.yaml"));
}

#[test]
fn uploading_replaces_paths_by_digests() {
    let mut docs = load_path(Path::new("tests/cases/demo.yaml")).unwrap();
    let doc = &mut docs[0];
    let field = doc.artifacts[0].field_path.clone();
    assert_eq!(field, "spec.template.spec.components[0].wasm.path");
    set_digest(&mut doc.object, &field, digest()).unwrap();
    // The object is now what the server accepts.
    doc.object.validate_for_server().unwrap();
    let Object::Deployment(d) = &doc.object else {
        panic!()
    };
    let w = d.spec.template.spec.components[0].wasm.as_ref().unwrap();
    assert_eq!((w.path.as_deref(), w.digest.clone()), (None, Some(digest())));

    let err = set_digest(
        &mut doc.object,
        "spec.template.spec.components[3].wasm.path",
        digest(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Deployment/default/hello has no wasm artifact at \"spec.template.spec.components[3].wasm.path\": pass the field_path of one of the document's ArtifactRefs"
    );
    assert!(set_digest(&mut docs[1].object, "spec.components[0]", digest()).is_err());
}

#[test]
fn a_directory_loads_sorted_and_recursive() {
    let docs = load_path(Path::new("tests/cases/dir-app")).unwrap();
    let kinds: Vec<Kind> = docs.iter().map(|d| d.object.kind()).collect();
    assert_eq!(kinds, [Kind::Namespace, Kind::Service, Kind::Deployment]);
    assert_eq!(docs[2].object.namespace(), Some("shop"));
}

#[test]
fn several_paths_are_one_apply() {
    let paths = [
        Path::new("tests/cases/demo.yaml").to_path_buf(),
        Path::new("tests/cases/demo.yaml").to_path_buf(),
    ];
    let err = load_paths(&paths).unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
    assert!(
        err.0[0].message.contains("already defined in document 1"),
        "{err}"
    );
}

#[test]
fn stdin_yaml_and_json() {
    let docs = load_str(&SERVICE.replace("NAME", "web"), "<stdin>").unwrap();
    assert_eq!(docs[0].file, "<stdin>");
    assert_eq!(docs[0].object.describe(), "Service/default/web");

    let json = r#"{"apiVersion":"skiff.dev/v1","kind":"Namespace","metadata":{"name":"a"}}"#;
    let docs = load_str(json, "<stdin>").unwrap();
    assert_eq!(docs[0].object.kind(), Kind::Namespace);

    let array = format!("[{json}, {}]", json.replace("\"a\"", "\"b\""));
    assert_eq!(load_str(&array, "<stdin>").unwrap().len(), 2);

    // Flow-style YAML is not JSON, and is read as YAML.
    let flow = "{apiVersion: skiff.dev/v1, kind: Namespace, metadata: {name: a}}";
    assert_eq!(
        load_str(flow, "<stdin>").unwrap()[0].object.describe(),
        "Namespace/a"
    );

    let err = load_str("[1, 2", "<stdin>").unwrap_err();
    assert_eq!(
        err.to_string(),
        "<stdin>: document 1: invalid YAML at line 1, column 1: unclosed bracket '['"
    );
    let err = load_str("[1, 2", "app.json").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app.json: invalid JSON at line 1, column 5: EOF while parsing a list"
    );
}

#[test]
fn stdin_paths_resolve_against_the_given_directory() {
    let pod = "apiVersion: skiff.dev/v1\nkind: Pod\nmetadata: {name: p}\n\
               spec: {components: [{name: c, wasm: {path: hello.wasm}}]}\n";
    let docs = load_str_in(pod, "<stdin>", Path::new("tests/cases")).unwrap();
    assert_eq!(docs[0].artifacts[0].field_path, "spec.components[0].wasm.path");
    // From the crate directory (the test's working directory) the file is not there.
    let err = load_str(pod, "<stdin>").unwrap_err();
    assert_eq!(err.0[0].path.as_deref(), Some("spec.components[0].wasm.path"));
    assert!(err.0[0].message.contains("does not exist"), "{err}");
}

#[test]
fn empty_input_is_an_error() {
    let err = load_str("# nothing here\n---\n", "empty.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "empty.yaml: has no objects: expected YAML documents or JSON objects with apiVersion, kind and metadata"
    );
}

#[test]
fn files_over_the_size_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut text = SERVICE.replace("NAME", "web");
    text.push_str(&"# padding\n".repeat((MAX_FILE_BYTES as usize) / 10 + 1));
    std::fs::write(&big, &text).unwrap();
    let err = load_path(&big).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].document, None);
    assert!(
        err.0[0].message.starts_with(&format!(
            "is {} bytes: manifests are limited to 4194304 bytes (4 MiB)",
            text.len()
        )),
        "{err}"
    );
    assert!(load_str(&text, "<stdin>").is_err());
}

#[test]
fn more_than_the_document_limit_is_refused() {
    let text: String = (0..=MAX_DOCUMENTS)
        .map(|i| format!("---\n{}", SERVICE.replace("NAME", &format!("s{i}"))))
        .collect();
    let err = load_str(&text, "many.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "many.yaml: document 1001: too many documents: one apply takes at most 1000; split the manifests into several applies"
    );
    let ok: String = (0..MAX_DOCUMENTS)
        .map(|i| format!("---\n{}", SERVICE.replace("NAME", &format!("s{i}"))))
        .collect();
    assert_eq!(load_str(&ok, "many.yaml").unwrap().len(), MAX_DOCUMENTS);
}

#[test]
fn bad_paths_are_file_level_errors() {
    let err = load_path(Path::new("tests/cases/nope.yaml")).unwrap_err();
    assert_eq!(err.0[0].file, "tests/cases/nope.yaml");
    assert!(err.0[0].message.starts_with("cannot read: "), "{err}");

    let err = load_path(Path::new("tests/cases/hello.wasm")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/cases/hello.wasm: is not a manifest: expected a .yaml, .yml or .json file, or a directory of them"
    );

    let dir = tempfile::tempdir().unwrap();
    let err = load_path(dir.path()).unwrap_err();
    assert!(
        err.0[0].message.contains("has no .yaml, .yml or .json files"),
        "{err}"
    );

    std::fs::write(dir.path().join("latin1.yaml"), b"name: caf\xe9\n").unwrap();
    let err = load_path(dir.path()).unwrap_err();
    assert!(err.0[0].message.contains("is not UTF-8"), "{err}");
}

#[test]
fn error_display_has_one_line_per_error() {
    let text = format!(
        "{}---\n{}",
        SERVICE.replace("NAME", "Bad"),
        SERVICE.replace("NAME", "also_bad")
    );
    let err = load_str(&text, "app.yaml").unwrap_err();
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("app.yaml: document 1: metadata.name: name \"Bad\""));
    assert!(lines[1].starts_with("app.yaml: document 2: metadata.name: name \"also_bad\""));
}

#[test]
fn hostile_yaml_is_refused_not_followed() {
    // Deep nesting.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = load_str(&format!("a: {deep}\n"), "deep.yaml").unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        "deep.yaml: document 1: invalid YAML at line 1, column 259: recursion limit exceeded"
    );
    // Aliases that expand exponentially ("billion laughs").
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let err = load_str(&bomb, "bomb.yaml").unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(
        err.0[0]
            .message
            .starts_with("invalid YAML at line 6, column 15: the document exceeds the parser's limits"),
        "{err}"
    );
    // Deep JSON.
    let err = load_str(&format!("{{\"a\": {deep}}}"), "deep.json").unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].document, None);
}

#[test]
fn configmaps_and_secrets_are_applyable() {
    let text = "apiVersion: skiff.dev/v1\nkind: ConfigMap\nmetadata: {name: settings}\n\
                data: {LOG_LEVEL: debug, app.properties: \"a=1\"}\n---\n\
                apiVersion: skiff.dev/v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: hunter2}\n";
    let docs = load_str(text, "config.yaml").unwrap();
    let Object::ConfigMap(c) = &docs[0].object else {
        panic!("first document is {:?}", docs[0].object.kind())
    };
    assert_eq!(c.data["LOG_LEVEL"], "debug");
    assert_eq!(docs[1].object.kind(), Kind::Secret);
    let bad = "apiVersion: skiff.dev/v1\nkind: Secret\nmetadata: {name: db}\ndata: {\"a b\": x}\n";
    let err = load_str(bad, "bad.yaml").unwrap_err().to_string();
    assert!(
        err.contains("data[\"a b\"]") && err.contains("key may only hold"),
        "{err}"
    );
}

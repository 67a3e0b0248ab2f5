//! Unit tests of object validation.
use super::*;

fn obj(json: &str) -> Object {
    serde_json::from_str(json).unwrap()
}

#[test]
fn names_must_be_dns_labels() {
    let o = obj(r#"{"kind":"Namespace","apiVersion":"skiff.dev/v1","metadata":{"name":"Bad_Name"}}"#);
    let e = o.validate().unwrap_err();
    assert_eq!(e.0[0].path, "metadata.name");
    assert!(e.0[0].message.contains("'B'"), "{e}");
}

#[test]
fn deployment_selector_must_match_template() {
    let o = obj(
        r#"{"kind":"Deployment","apiVersion":"skiff.dev/v1","metadata":{"name":"d"},
        "spec":{"replicas":-1,"selector":{"matchLabels":{"app":"a"}},
        "template":{"metadata":{"labels":{"app":"b"}},"spec":{"components":[{"name":"c"}]}}}}"#,
    );
    let e = o.validate().unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.replicas",
            "spec.selector.matchLabels",
            "spec.template.spec.components[0].wasm"
        ]
    );
}

#[test]
fn oci_components_are_checked() {
    let o = obj(
        r#"{"kind":"Pod","apiVersion":"skiff.dev/v1","metadata":{"name":"p"},
        "spec":{"components":[
          {"name":"a","oci":{"image":"busybox","command":[],"workingDir":"srv",
            "volumes":["tmp","/cache","/cache/","/x/../y"]},
           "resources":{"memory":"1Mi","fuel":5},"config":[{"name":"k","value":"v"}]},
          {"name":"b","oci":{"image":"127.0.0.1:5000/site:v1"},
           "wasm":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}]}}"#,
    );
    let e = o.validate().unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.components[0].oci.image",
            "spec.components[0].oci.command",
            "spec.components[0].oci.workingDir",
            "spec.components[0].oci.volumes[0]",
            "spec.components[0].oci.volumes[2]",
            "spec.components[0].oci.volumes[3]",
            "spec.components[0].resources.memory",
            "spec.components[0].resources.fuel",
            "spec.components[0].config",
            "spec.components[1]",
        ],
        "{e}"
    );
    assert!(e.to_string().contains("names no registry"), "{e}");
    let ok = obj(
        r#"{"kind":"Pod","apiVersion":"skiff.dev/v1","metadata":{"name":"p"},
        "spec":{"components":[{"name":"web","oci":{"image":"127.0.0.1:5000/site:v1","volumes":["/tmp"]}},
          {"name":"side","wasm":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}]}}"#,
    );
    ok.validate().unwrap();
}

#[test]
fn disconnect_tolerations_and_taints_are_checked() {
    let o = obj(
        r#"{"kind":"Pod","apiVersion":"skiff.dev/v1","metadata":{"name":"p"},
        "spec":{"components":[{"name":"c","wasm":{"url":"http://x/c.wasm",
        "digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}],
        "disconnect":{"replaceAfter":"never","stopAfter":"0s"},
        "tolerations":[{"operator":"Exists","value":"v"},{"key":"","operator":"Equal"}]}}"#,
    );
    let e = o.validate().unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.disconnect.stopAfter",
            "spec.tolerations[0].value",
            "spec.tolerations[1].key"
        ],
        "{e}"
    );
    let ok = obj(
        r#"{"kind":"Pod","apiVersion":"skiff.dev/v1","metadata":{"name":"p"},
        "spec":{"components":[{"name":"c","wasm":{"url":"http://x/c.wasm",
        "digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}],
        "disconnect":{"replaceAfter":"30s","stopAfter":"10m"},
        "tolerations":[{"key":"dedicated","value":"edge","effect":"NoExecute"}]}}"#,
    );
    ok.validate().unwrap();
    let node = obj(
        r#"{"kind":"Node","apiVersion":"skiff.dev/v1","metadata":{"name":"n"},
        "spec":{"taints":[{"key":"a","effect":"NoSchedule"},{"key":"a","value":"b","effect":"NoSchedule"},
        {"key":"","effect":"NoExecute"}]}}"#,
    );
    let e = node.validate().unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["spec.taints[1]", "spec.taints[2].key"], "{e}");
}

#[test]
fn request_deadlines_are_bounded_and_huge_durations_do_not_parse() {
    let pod = |timeout: &str| {
        format!(
            r#"{{"kind":"Pod","apiVersion":"skiff.dev/v1","metadata":{{"name":"p"}},
            "spec":{{"components":[{{"name":"a","wasm":{{"digest":"sha256:{}"}},
              "resources":{{"timeout":"{timeout}"}}}}]}}}}"#,
            "0".repeat(64)
        )
    };
    obj(&pod("1h")).validate().unwrap();
    let e = obj(&pod("2h")).validate().unwrap_err();
    assert_eq!(e.0[0].path, "spec.components[0].resources.timeout", "{e}");
    assert!(e.0[0].message.contains("at most 1h"), "{e}");
    // Beyond any field's bound the value does not even parse, so nothing downstream sees it.
    let huge = serde_json::from_str::<Object>(&pod("100000000000h")).unwrap_err();
    assert!(huge.to_string().contains("at most 366d"), "{huge}");
}

//! Artifacts nobody references are deleted after the grace period: a component stays in the
//! member's store while a Deployment (its ReplicaSets, its pods) names it, however long, and is
//! gone once the last of them is deleted and the grace period has passed.
use std::time::{Duration, Instant};

use crate::harness::{Skiff, hello_app};

#[test]
fn an_unreferenced_artifact_is_deleted_after_the_grace_period_and_a_referenced_one_stays() {
    let s = Skiff::start_with(&["--artifact-grace".into(), "1s".into()]);
    let app = hello_app();
    let file = s.dir.path().join("app.yaml");
    std::fs::write(&file, app).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    let store = s.state_dir().join("artifacts/sha256");
    let stored = || {
        std::fs::read_dir(&store)
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    assert_eq!(stored(), 1, "the upload is stored");
    s.wait_until("the app serves", Duration::from_secs(60), || {
        s.gateway_get("/").is_some_and(|(st, _)| st == 200)
    });
    // Referenced: kept well past the grace period (the collector looks every 250 ms).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(stored(), 1, "a referenced artifact is kept");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.cli_ok(&["delete", "deployment", "hello"]);
    s.wait_until(
        "the artifact is deleted once nothing references it",
        Duration::from_secs(30),
        || stored() == 0,
    );
    assert!(s.log().contains("deleted an artifact no object references"));
}

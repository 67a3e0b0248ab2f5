//! The image half of the OCI plugin with real parts: layers built as tar archives, unpacked
//! safely (whiteouts, symlinks resolved inside the root, escapes refused), images pushed to Debian's
//! `docker-registry` on loopback and pulled back, OCI image layouts and tarballs imported, and every
//! bad input refused with nothing left behind.
use std::io::Write;
use std::path::{Path, PathBuf};

use skiff_oci::{ImageStore, OciError, UnpackLimits, UnpackStats, apply_layer, sha256_digest};

/// One tar entry to build.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar archive of `entries`, written with raw headers so that hostile names (`..`, absolute
/// paths) can be built too.
fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
            E::Dir(n) => (n, tar::EntryType::Directory, &[], None),
            E::File(n, d) => (n, tar::EntryType::Regular, d, None),
            E::Symlink(n, t) => (n, tar::EntryType::Symlink, &[], Some(t)),
            E::Hardlink(n, t) => (n, tar::EntryType::Link, &[], Some(t)),
        };
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            raw.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn apply(root: &Path, layer: &[u8]) -> Result<UnpackStats, OciError> {
    let mut stats = UnpackStats::default();
    apply_layer("test-layer", layer, root, UnpackLimits::default(), &mut stats).map(|()| stats)
}

fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    (dir, root)
}

#[test]
fn layers_stack_with_whiteouts_and_gzip_is_detected() {
    let (_d, root) = root();
    apply(
        &root,
        &gzip(&tar_of(&[
            E::Dir("./a/"),
            E::File("./a/x", b"x"),
            E::File("./a/y", b"y"),
            E::Dir("b/"),
            E::File("b/z", b"z"),
            E::File("c/deep/file", b"parents are created"),
        ])),
    )
    .unwrap();
    let stats = apply(
        &root,
        &tar_of(&[
            E::File("a/.wh.x", b""),
            E::File("b/.wh..wh..opq", b""),
            E::File("b/new", b"n"),
        ]),
    )
    .unwrap();
    assert_eq!(stats.entries, 3);
    assert!(!root.join("a/x").exists(), "whiteout removes a/x");
    assert_eq!(std::fs::read(root.join("a/y")).unwrap(), b"y");
    assert!(
        !root.join("b/z").exists(),
        "opaque whiteout hides b's old content"
    );
    assert_eq!(std::fs::read(root.join("b/new")).unwrap(), b"n");
    assert_eq!(
        std::fs::read(root.join("c/deep/file")).unwrap(),
        b"parents are created"
    );
}

#[test]
fn symlinks_in_paths_resolve_inside_the_root_and_never_on_the_host() {
    let (_d, root) = root();
    let marker = format!("skiff-oci-escape-{}", std::process::id());
    apply(
        &root,
        &tar_of(&[
            E::Dir("usr/lib/"),
            E::Symlink("lib", "/usr/lib"),
            E::File("lib/libc.so", b"elf"),
            E::Symlink("up", "/"),
            E::File(&format!("up/tmp/{marker}"), b"stays inside"),
            E::Symlink("rel", "usr/../usr/lib"),
            E::File("rel/other.so", b"elf2"),
        ]),
    )
    .unwrap();
    assert_eq!(std::fs::read(root.join("usr/lib/libc.so")).unwrap(), b"elf");
    assert_eq!(
        std::fs::read(root.join(format!("tmp/{marker}"))).unwrap(),
        b"stays inside"
    );
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "nothing was written on the host"
    );
    assert_eq!(std::fs::read(root.join("usr/lib/other.so")).unwrap(), b"elf2");
    // A file replaces a symlink instead of writing through it.
    apply(&root, &tar_of(&[E::File("lib", b"now a file")])).unwrap();
    assert_eq!(std::fs::read(root.join("lib")).unwrap(), b"now a file");
    assert_eq!(std::fs::read(root.join("usr/lib/libc.so")).unwrap(), b"elf");
}

#[test]
fn escaping_entries_are_refused() {
    for (what, layer, expect) in [
        ("parent dir", tar_of(&[E::File("../evil", b"x")]), "`..`"),
        (
            "nested parent dir",
            tar_of(&[E::File("a/../../evil", b"x")]),
            "`..`",
        ),
        (
            "absolute path",
            tar_of(&[E::File("/etc/evil", b"x")]),
            "absolute path",
        ),
        (
            "symlink out",
            tar_of(&[E::Symlink("etc", "../../../../etc")]),
            "points outside",
        ),
        (
            "hard link out",
            tar_of(&[E::Hardlink("passwd", "../../etc/passwd")]),
            "`..`",
        ),
        (
            "hard link absolute",
            tar_of(&[E::Hardlink("passwd", "/etc/passwd")]),
            "absolute path",
        ),
        (
            "hard link to nothing",
            tar_of(&[E::Hardlink("h", "missing")]),
            "have not created",
        ),
        (
            "file as a directory",
            tar_of(&[E::File("f", b"x"), E::File("f/g", b"y")]),
            "is a file",
        ),
        (
            "bad whiteout",
            tar_of(&[E::File(".wh...", b"")]),
            "malformed whiteout",
        ),
    ] {
        let (_d, root) = root();
        let err = apply(&root, &layer).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OciError::Layer { .. }), "{what}: {err:?}");
        assert!(
            text.contains(expect) && text.contains("refused"),
            "{what}: {text}"
        );
    }
    // Not an archive at all.
    let (_d, root) = root();
    let err = apply(&root, &gzip(b"definitely not a tar archive, just some bytes")).unwrap_err();
    assert!(matches!(err, OciError::Layer { .. }), "{err:?}");
}

#[test]
fn limits_stop_an_image_that_unpacks_too_big() {
    let (_d, root) = root();
    let big = vec![7u8; 4096];
    let layer = tar_of(&[E::File("a", &big), E::File("b", &big)]);
    let mut stats = UnpackStats::default();
    let limits = UnpackLimits {
        max_bytes: 6000,
        max_entries: 100,
    };
    let err = apply_layer("l", &layer[..], &root, limits, &mut stats).unwrap_err();
    assert!(err.to_string().contains("more than 6000 bytes"), "{err}");
}

/// A minimal OCI image layout with one image tagged `tag`; returns its manifest digest.
fn write_layout(dir: &Path, tag: &str, layers: &[Vec<u8>], cmd: &[&str]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256_digest(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let config = serde_json::json!({"architecture":"amd64","os":"linux",
        "config":{"Cmd":cmd,"Env":["PATH=/bin"],"WorkingDir":"/"},
        "rootfs":{"type":"layers","diff_ids":[]}});
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put(&config_bytes);
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": put(l), "size": l.len()})
        })
        .collect();
    let manifest = serde_json::json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":config_digest,"size":config_bytes.len()},
        "layers": layer_descs});
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put(&manifest_bytes);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion":2,"manifests":[{
            "mediaType":"application/vnd.oci.image.manifest.v1+json","digest":manifest_digest,
            "size":manifest_bytes.len(),"annotations":{"org.opencontainers.image.ref.name":tag}}]}))
        .unwrap(),
    )
    .unwrap();
    manifest_digest
}

fn site_layer() -> Vec<u8> {
    gzip(&tar_of(&[
        E::Dir("www/"),
        E::File("www/index.html", b"<h1>hello from a layer</h1>\n"),
    ]))
}

#[test]
fn image_layouts_and_tarballs_import_verified_and_bad_ones_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(work.path().join("store"), Vec::new()).unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, "v1", &[site_layer()], &["httpd", "-f"]);
    let image = store.import_layout(&layout, Some("v1")).unwrap();
    assert_eq!(image.manifest_digest, digest);
    assert_eq!(
        image.config.cmd,
        Some(vec!["httpd".to_string(), "-f".to_string()])
    );
    let rootfs = work.path().join("c1/rootfs");
    store.unpack(&image, &rootfs, UnpackLimits::default()).unwrap();
    assert!(
        std::fs::read_to_string(rootfs.join("www/index.html"))
            .unwrap()
            .contains("hello from a layer")
    );
    let err = store.import_layout(&layout, Some("v2")).unwrap_err();
    assert!(err.to_string().contains("no image is tagged \"v2\""), "{err}");

    // The same layout as a tarball.
    let tarball = work.path().join("image.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
        b.append_dir_all(".", &layout).unwrap();
        b.finish().unwrap();
    }
    let fresh = ImageStore::open(work.path().join("store2"), Vec::new()).unwrap();
    assert_eq!(
        fresh.import_tar(&tarball, Some("v1")).unwrap().manifest_digest,
        digest
    );

    // A blob whose bytes do not match its name: refused, not stored.
    let bad = work.path().join("bad");
    write_layout(&bad, "v1", &[site_layer()], &["httpd"]);
    let layer_digest = sha256_digest(&site_layer());
    std::fs::write(
        bad.join("blobs/sha256")
            .join(layer_digest.trim_start_matches("sha256:")),
        b"tampered",
    )
    .unwrap();
    let clean = ImageStore::open(work.path().join("store3"), Vec::new()).unwrap();
    let err = clean.import_layout(&bad, Some("v1")).unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err:?}");
    assert!(
        !clean.blob_path(&layer_digest).unwrap().exists(),
        "the tampered layer was not kept"
    );

    // A malformed manifest.
    let broken = work.path().join("broken");
    let d = write_layout(&broken, "v1", &[site_layer()], &["httpd"]);
    let junk = br#"{"schemaVersion": 2, "layers": "not a list"}"#;
    let junk_digest = sha256_digest(junk);
    std::fs::write(
        broken
            .join("blobs/sha256")
            .join(junk_digest.trim_start_matches("sha256:")),
        junk,
    )
    .unwrap();
    let index = std::fs::read_to_string(broken.join("index.json"))
        .unwrap()
        .replace(&d, &junk_digest);
    std::fs::write(broken.join("index.json"), index).unwrap();
    let err = clean.import_layout(&broken, Some("v1")).unwrap_err();
    assert!(err.to_string().contains("malformed manifest"), "{err}");

    // A layer with a path traversal: refused and no root filesystem left behind.
    let evil = work.path().join("evil");
    write_layout(
        &evil,
        "v1",
        &[gzip(&tar_of(&[E::File("../../escape", b"x")]))],
        &["sh"],
    );
    let image = clean.import_layout(&evil, Some("v1")).unwrap();
    let rootfs = work.path().join("c2/rootfs");
    let err = clean
        .unpack(&image, &rootfs, UnpackLimits::default())
        .unwrap_err();
    assert!(err.to_string().contains("`..`"), "{err}");
    assert!(!rootfs.exists(), "the partial root filesystem was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_pushed_to_a_real_registry_pull_verified_and_errors_are_clear() {
    let Some(registry) = skiff_testkit::start_registry() else {
        skiff_testkit::tool_missing("Debian's docker-registry");
        return;
    };
    let reference = format!("{}/skiff/site:v1", registry.addr);
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let config = serde_json::to_vec(&serde_json::json!({"architecture":"amd64","os":"linux",
        "config":{"Cmd":["httpd","-f","-p","8080"],"WorkingDir":"/www"},"rootfs":{"type":"layers","diff_ids":[]}}))
    .unwrap();
    let pushed = client
        .push(
            &reference.parse().unwrap(),
            &[oci_client::client::ImageLayer::oci_v1_gzip(site_layer(), None)],
            oci_client::client::Config::oci_v1(config, None),
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .expect("push to the local registry");
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(work.path().join("store"), vec![registry.addr.clone()]).unwrap();
    let image = store.pull(&reference).await.expect("pull");
    assert!(
        pushed.manifest_url.contains("/skiff/site/manifests/"),
        "{}",
        pushed.manifest_url
    );
    assert_eq!(image.config.working_dir.as_deref(), Some("/www"));
    let rootfs = work.path().join("rootfs");
    store.unpack(&image, &rootfs, UnpackLimits::default()).unwrap();
    assert!(rootfs.join("www/index.html").exists());
    // Pinned by the right digest: the same image; by another: refused.
    let pinned = format!("{}/skiff/site@{}", registry.addr, image.manifest_digest);
    assert_eq!(
        store.pull(&pinned).await.unwrap().manifest_digest,
        image.manifest_digest
    );
    let wrong = format!("{}/skiff/site:v1@sha256:{}", registry.addr, "0".repeat(64));
    let err = store.pull(&wrong).await.unwrap_err();
    assert!(
        matches!(err, OciError::DigestMismatch { .. } | OciError::NotFound { .. }),
        "{err:?}"
    );
    // Unknown tag, unknown repository, unreachable registry, nonsense reference.
    let err = store
        .pull(&format!("{}/skiff/site:v9", registry.addr))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("was not found"), "{err}");
    let err = store
        .pull(&format!("{}/nobody/here:v1", registry.addr))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::NotFound { .. }), "{err:?}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = ImageStore::open(work.path().join("s2"), vec![format!("127.0.0.1:{closed}")]).unwrap();
    let err = unreachable
        .pull(&format!("127.0.0.1:{closed}/skiff/site:v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Registry { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    let err = store.pull("UPPER/Case::bad").await.unwrap_err();
    assert!(matches!(err, OciError::Reference { .. }), "{err:?}");
}

//! Shared by the container tests: runc/busybox discovery and a busybox image built from the
//! host's busybox binary (no image comes from the internet).
#![allow(dead_code, reason = "each test file uses part of it")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_oci::{ImageStore, StoredImage, sha256_digest};

/// runc and busybox, installed from Debian when missing; `None` when they cannot be (or this
/// process may not create containers).
pub(crate) fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |p: &str| {
        [
            format!("/usr/sbin/{p}"),
            format!("/usr/bin/{p}"),
            format!("/bin/{p}"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    };
    if find("runc").is_none() || find("busybox").is_none() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "runc", "busybox-static"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    Some((find("runc")?, find("busybox")?)).filter(|_| is_root)
}

pub(crate) fn gzip_tar(entries: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    for (path, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, path, target).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tar).unwrap();
    e.finish().unwrap()
}

/// A busybox image as an OCI layout: /bin/busybox, /bin/sh, /www/index.html.
pub(crate) fn busybox_image(store: &ImageStore, work: &Path, busybox: &Path) -> StoredImage {
    busybox_image_with(store, &work.join("layout"), busybox, &[], None)
}

/// A busybox image as an OCI layout in `dir` (tag `v1`), with `extra` files (path, content,
/// mode) in its layer and `user` as its `USER`.
pub(crate) fn busybox_image_with(
    store: &ImageStore,
    dir: &Path,
    busybox: &Path,
    extra: &[(&str, &[u8], u32)],
    user: Option<&str>,
) -> StoredImage {
    let bin = std::fs::read(busybox).unwrap();
    let mut files: Vec<(&str, &[u8], u32)> = vec![
        ("bin/busybox", &bin, 0o755),
        ("www/index.html", b"hello from a container\n", 0o644),
    ];
    files.extend_from_slice(extra);
    let layer = gzip_tar(&files, &[("bin/sh", "busybox")]);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256_digest(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let mut run = serde_json::json!({"Entrypoint":["/bin/busybox"],
        "Cmd":["sh","-c","exec busybox httpd -f -p $PORT -h /www"]});
    if let Some(u) = user {
        run["User"] = u.into();
    }
    let config = serde_json::to_vec(&serde_json::json!({"architecture":"amd64","os":"linux",
        "config": run, "rootfs":{"type":"layers","diff_ids":[]}}))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion":2,
        "mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":put(&config),"size":config.len()},
        "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":put(&layer),"size":layer.len()}]}))
    .unwrap();
    let md = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion":2,"manifests":[{"mediaType":
            "application/vnd.oci.image.manifest.v1+json","digest":md,"size":manifest.len(),
            "annotations":{"org.opencontainers.image.ref.name":"v1"}}]}))
        .unwrap(),
    )
    .unwrap();
    store.import_layout(dir, Some("v1")).unwrap()
}

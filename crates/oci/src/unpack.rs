//! Unpacking image layers into a root filesystem without ever writing outside it.
//!
//! Each entry's path is cleaned (a leading `./` dropped; absolute paths and `..` refused), its
//! parent directory is resolved *inside* the root the way the container will see it (symlinks in
//! the path are followed with the root as `/`, never on the host), and what is already there is
//! removed before the new entry is created, so a symlink planted by an earlier entry can never
//! redirect a write. Hard links must name an existing path inside the root; symlinks whose
//! relative target climbs above the root are refused. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`)
//! delete what lower layers put there. Device nodes and FIFOs are skipped (runc provides `/dev`).
//!
//! Setuid and setgid bits are stripped from files unless [`UnpackOptions::keep_setid`] is set: a
//! container's process cannot gain privileges from a file of its image. For a container in a user
//! namespace, [`UnpackOptions::id_offset`] shifts every owner into the namespace's host range.
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::OciError;

/// Most symlinks followed while resolving one path (as the Linux kernel allows).
const MAX_SYMLINKS: usize = 40;
/// Prefix of a whiteout entry's file name.
const WHITEOUT: &str = ".wh.";
/// The opaque-directory whiteout: hides everything lower layers put in its directory.
const OPAQUE: &str = ".wh..wh..opq";

/// Caps on what one image may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Bytes of file content, over all layers.
    pub max_bytes: u64,
    /// Entries, over all layers.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// How layers are unpacked: the limits, and what happens to privileges and owners.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackOptions {
    /// Caps on size and entries.
    pub limits: UnpackLimits,
    /// Keep setuid and setgid bits on files (stripped by default).
    pub keep_setid: bool,
    /// Added to every owner's uid and gid (a user namespace's first host id; 0 for none).
    pub id_offset: u32,
}

impl From<UnpackLimits> for UnpackOptions {
    fn from(limits: UnpackLimits) -> Self {
        UnpackOptions {
            limits,
            ..Default::default()
        }
    }
}

/// Setuid and setgid bits of a mode.
const SETID_BITS: u32 = 0o6000;

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries applied (whiteouts included, skipped devices not).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Applies the layer archives (tar, gzip-compressed or not, detected by content) in order onto
/// `rootfs`, which is created if missing. `name` of each layer is its digest, for messages.
///
/// # Errors
/// [`OciError::Layer`] for an entry that would escape the root, a corrupt archive or a limit
/// exceeded; [`OciError::Io`] for a local failure. The caller removes the partial root.
pub fn unpack_layers(
    layers: &[(String, PathBuf)],
    rootfs: &Path,
    options: impl Into<UnpackOptions>,
) -> Result<UnpackStats, OciError> {
    let options = options.into();
    fs::create_dir_all(rootfs).map_err(OciError::io(rootfs))?;
    if options.id_offset != 0 {
        chown(rootfs, 0, 0, options.id_offset)?;
    }
    let root = fs::canonicalize(rootfs).map_err(OciError::io(rootfs))?;
    let mut stats = UnpackStats::default();
    for (name, path) in layers {
        let file = fs::File::open(path).map_err(OciError::io(path))?;
        apply_layer(name, file, &root, options, &mut stats)?;
    }
    Ok(stats)
}

/// Applies one layer read from `reader` onto `root` (already canonical).
///
/// # Errors
/// As [`unpack_layers`].
pub fn apply_layer(
    name: &str,
    reader: impl Read,
    root: &Path,
    options: impl Into<UnpackOptions>,
    stats: &mut UnpackStats,
) -> Result<(), OciError> {
    let options = options.into();
    let (limits, shift) = (options.limits, options.id_offset);
    let mut reader = std::io::BufReader::new(reader);
    let gz = {
        use std::io::BufRead;
        let head = reader.fill_buf().map_err(OciError::io(name))?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let input: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(input);
    let bad = |entry: &str, reason: String| OciError::Layer {
        layer: name.to_owned(),
        entry: entry.to_owned(),
        reason,
    };
    let entries = archive
        .entries()
        .map_err(|e| bad("", format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad("", format!("corrupt archive: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = PathBuf::from(<OsString as std::os::unix::ffi::OsStringExt>::from_vec(raw));
        let comps = clean(&path).map_err(|r| bad(&shown, r))?;
        let Some((file_name, parents)) = comps.split_last() else {
            continue; // the root itself
        };
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            return Err(bad(
                &shown,
                format!("more than {} entries in the image", limits.max_entries),
            ));
        }
        let parent = resolve(root, parents, true).map_err(|r| bad(&shown, r))?;
        let file_name_str = file_name.to_string_lossy();
        if file_name_str == OPAQUE {
            for child in fs::read_dir(&parent).map_err(OciError::io(&parent))? {
                let child = child.map_err(OciError::io(&parent))?;
                remove(&child.path())?;
            }
            continue;
        }
        if let Some(hidden) = file_name_str.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(bad(&shown, "malformed whiteout".into()));
            }
            remove(&parent.join(hidden))?;
            continue;
        }
        let target = parent.join(file_name);
        let header = entry.header();
        let mut mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove(&target)?;
                        fs::create_dir(&target).map_err(OciError::io(&target))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(OciError::io(&target))?,
                }
                // Owner first: a chown clears setuid and setgid bits.
                chown(&target, uid, gid, shift)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(OciError::io(&target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if !options.keep_setid && mode & SETID_BITS != 0 {
                    tracing::debug!(layer = name, entry = %shown, "setuid/setgid bits stripped");
                    mode &= !SETID_BITS;
                }
                remove(&target)?;
                let size = header.size().unwrap_or(0);
                if stats.bytes.saturating_add(size) > limits.max_bytes {
                    return Err(bad(
                        &shown,
                        format!("the image unpacks to more than {} bytes", limits.max_bytes),
                    ));
                }
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode_for(mode)
                    .open(&target)
                    .map_err(OciError::io(&target))?;
                let copied = std::io::copy(&mut (&mut entry).take(size), &mut out)
                    .map_err(|e| bad(&shown, format!("cannot read its content: {e}")))?;
                out.flush().map_err(OciError::io(&target))?;
                stats.bytes += copied;
                // Owner first: a chown clears setuid and setgid bits.
                chown(&target, uid, gid, shift)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(OciError::io(&target))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(&shown, format!("unreadable link target: {e}")))?
                    .ok_or_else(|| bad(&shown, "symlink without a target".into()))?
                    .into_owned();
                if link.is_relative() && climbs_out(parents, &link) {
                    return Err(bad(
                        &shown,
                        format!("symlink to {} points outside the root filesystem", link.display()),
                    ));
                }
                remove(&target)?;
                std::os::unix::fs::symlink(&link, &target).map_err(OciError::io(&target))?;
                lchown(&target, uid, gid, shift)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| bad(&shown, format!("unreadable link target: {e}")))?
                    .ok_or_else(|| bad(&shown, "hard link without a target".into()))?
                    .into_owned();
                let src_comps =
                    clean(&link).map_err(|r| bad(&shown, format!("hard link to {}: {r}", link.display())))?;
                let Some((src_name, src_parents)) = src_comps.split_last() else {
                    return Err(bad(&shown, "hard link to the root".into()));
                };
                let src_parent = resolve(root, src_parents, false).map_err(|r| bad(&shown, r))?;
                let source = src_parent.join(src_name);
                let meta = fs::symlink_metadata(&source).map_err(|_| {
                    bad(
                        &shown,
                        format!(
                            "hard link to {}, which the layers have not created",
                            link.display()
                        ),
                    )
                })?;
                if meta.is_dir() {
                    return Err(bad(&shown, "hard link to a directory".into()));
                }
                remove(&target)?;
                fs::hard_link(&source, &target).map_err(OciError::io(&target))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                tracing::debug!(layer = name, entry = %shown, "device node or fifo skipped");
                stats.entries -= 1;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                return Err(bad(&shown, format!("unsupported entry type {other:?}")));
            }
        }
    }
    Ok(())
}

/// The normal components of an archive path: `./` and `.` dropped; absolute paths and `..`
/// refused.
fn clean(path: &Path) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path: layer entries must be relative to the root filesystem".into());
            }
            Component::ParentDir => {
                return Err("path with `..`: it could write outside the root filesystem".into());
            }
        }
    }
    Ok(out)
}

/// Whether a relative symlink target, resolved lexically from the link's directory, climbs above
/// the root.
fn climbs_out(parents: &[OsString], target: &Path) -> bool {
    let mut depth = parents.len() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// The host path of the directory `comps` inside `root`, resolving symlinks as the container would
/// (absolute targets from `root`, `..` never above it). Missing directories are created (with
/// `create`), and a non-directory in the way is an error.
fn resolve(root: &Path, comps: &[OsString], create: bool) -> Result<PathBuf, String> {
    let mut todo: VecDeque<OsString> = comps.iter().cloned().collect();
    let mut at: Vec<OsString> = Vec::new();
    let mut followed = 0;
    while let Some(c) = todo.pop_front() {
        if c == OsStr::new("..") {
            at.pop();
            continue;
        }
        if c == OsStr::new(".") || c.is_empty() {
            continue;
        }
        let host = at.iter().fold(root.to_path_buf(), |p, c| p.join(c)).join(&c);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err("too many levels of symbolic links".into());
                }
                let target = fs::read_link(&host).map_err(|e| format!("{}: {e}", host.display()))?;
                if target.is_absolute() {
                    at.clear();
                }
                let mut expanded: Vec<OsString> = target
                    .components()
                    .filter_map(|t| match t {
                        Component::Normal(n) => Some(n.to_owned()),
                        Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
                expanded.extend(todo.drain(..));
                todo = expanded.into();
            }
            Ok(m) if m.is_dir() => at.push(c),
            Ok(_) => {
                return Err(format!(
                    "{} is a file where the entry needs a directory",
                    PathBuf::from_iter(at.iter().chain([&c])).display()
                ));
            }
            Err(_) if create => {
                fs::create_dir(&host).map_err(|e| format!("{}: {e}", host.display()))?;
                at.push(c);
            }
            Err(_) => {
                return Err(format!(
                    "{} does not exist",
                    PathBuf::from_iter(at.iter().chain([&c])).display()
                ));
            }
        }
    }
    Ok(at.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// Removes whatever is at `path` (file, symlink — not what it points to — or directory tree).
fn remove(path: &Path) -> Result<(), OciError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(OciError::io(path)),
        Ok(_) => fs::remove_file(path).map_err(OciError::io(path)),
        Err(_) => Ok(()),
    }
}

fn chown(path: &Path, uid: u64, gid: u64, shift: u32) -> Result<(), OciError> {
    let (u, g) = ids(uid, gid, shift);
    if running_as_root() {
        std::os::unix::fs::chown(path, Some(u), Some(g)).map_err(OciError::io(path))?;
    }
    Ok(())
}

fn lchown(path: &Path, uid: u64, gid: u64, shift: u32) -> Result<(), OciError> {
    let (u, g) = ids(uid, gid, shift);
    if running_as_root() {
        std::os::unix::fs::lchown(path, Some(u), Some(g)).map_err(OciError::io(path))?;
    }
    Ok(())
}

/// The host owner of an entry: its ids shifted by `shift` (an id that does not fit becomes the
/// shifted root).
fn ids(uid: u64, gid: u64, shift: u32) -> (u32, u32) {
    let host = |id: u64| {
        u32::try_from(id)
            .ok()
            .and_then(|i| i.checked_add(shift))
            .unwrap_or(shift)
    };
    (host(uid), host(gid))
}

/// Whether this process may give files away (ownership from the image needs root).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `OpenOptions::mode` under a name that reads well in a chain.
trait ModeFor {
    fn mode_for(&mut self, mode: u32) -> &mut Self;
}

impl ModeFor for fs::OpenOptions {
    fn mode_for(&mut self, mode: u32) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, mode & 0o777 | 0o200)
    }
}

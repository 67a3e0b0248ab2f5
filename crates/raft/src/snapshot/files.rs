//! The snapshot directory: one file per snapshot, written under a temporary name, synced and
//! renamed into place, removed once a newer snapshot is stored.
//!
//! ```text
//! <dir>/<term>-<index>-<first 8 bytes of the sha256, hex>.snap    a complete, checked snapshot
//! <dir>/<kind>-<n>.tmp                                            being written or received
//! ```
//!
//! A snapshot file is durable (synced, renamed, directory synced) before the redb transaction that
//! stores its descriptor commits, so a stored descriptor always names a file on disk. Temporary
//! files belong to a writer that is running; at start nobody is, so they are removed then.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::SnapshotDescriptor;
use super::descriptor::hex;
use crate::RaftError;

/// A file being written; `sync` makes what was written durable.
pub(crate) trait WriteFile: Write + Send {
    /// Flushes and syncs the file's data to the disk.
    fn sync(&mut self) -> io::Result<()>;
}

/// Where snapshot files live: a real directory, or the simulation's memory.
pub(crate) trait Dir: Send + Sync + 'static {
    /// Creates a new file (it must not exist) for writing.
    fn create(&self, name: &str) -> io::Result<Box<dyn WriteFile>>;
    /// Opens a file for reading, with its length. The reader keeps working if the file is
    /// removed meanwhile.
    fn open(&self, name: &str) -> io::Result<(Box<dyn Read + Send>, u64)>;
    /// Renames a file, replacing `to`; durable when it returns.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file; a missing one is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// The names of the files.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Where `name` is, for messages.
    fn path(&self, name: &str) -> PathBuf;
}

/// A directory on the file system; files are created `0600`, the directory `0700`.
struct FsDir(PathBuf);

struct FsFile(io::BufWriter<std::fs::File>);

impl Write for FsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl WriteFile for FsFile {
    fn sync(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().sync_all()
    }
}

impl Dir for FsDir {
    fn create(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.0.join(name))?;
        Ok(Box::new(FsFile(io::BufWriter::with_capacity(1 << 20, file))))
    }

    fn open(&self, name: &str) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let file = std::fs::File::open(self.0.join(name))?;
        let len = file.metadata()?.len();
        Ok((Box::new(io::BufReader::with_capacity(1 << 20, file)), len))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.0.join(from), self.0.join(to))?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(&self.0)?.sync_all()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.0.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.0)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

/// Names temporary files apart within the process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(1);

/// A snapshot's identity: its raft position and its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotId {
    pub(crate) term: u64,
    pub(crate) index: u64,
    pub(crate) sha256: [u8; 32],
}

impl SnapshotId {
    /// The file name of this snapshot.
    pub(crate) fn file_name(&self) -> String {
        format!("{}-{}-{}.snap", self.term, self.index, hex(&self.sha256[..8]))
    }

    /// Parses a file name made by [`SnapshotId::file_name`]: `(term, index)`.
    pub(crate) fn parse(name: &str) -> Option<(u64, u64)> {
        let stem = name.strip_suffix(".snap")?;
        let mut parts = stem.splitn(3, '-');
        let term = parts.next()?.parse().ok()?;
        let index = parts.next()?.parse().ok()?;
        let digest = parts.next()?;
        (digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then_some((term, index))
    }
}

/// This node's snapshot directory. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SnapshotFiles {
    dir: Arc<dyn Dir>,
}

impl std::fmt::Debug for SnapshotFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SnapshotFiles").field(&self.dir.path("")).finish()
    }
}

/// A storage error about `what` at `path`, saying what to do.
fn disk_error(what: &str, path: &Path, e: &io::Error) -> RaftError {
    RaftError::Storage(format!(
        "{what} {}: {e}; check the disk (free space, permissions)",
        path.display()
    ))
}

impl SnapshotFiles {
    /// The directory at `path`, created (`0700`) if missing.
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] when it cannot be created.
    pub(crate) fn open(path: &Path) -> Result<Self, RaftError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| disk_error("cannot create the snapshot directory", path, &e))?;
        Ok(Self::new(Arc::new(FsDir(path.to_owned()))))
    }

    /// Snapshot files in `dir`.
    pub(crate) fn new(dir: Arc<dyn Dir>) -> Self {
        SnapshotFiles { dir }
    }

    /// Where the file of `id` is.
    pub(crate) fn path(&self, id: &SnapshotId) -> PathBuf {
        self.dir.path(&id.file_name())
    }

    /// A new temporary file; `kind` says who writes it (`local`, `incoming`).
    pub(crate) fn writer(&self, kind: &str) -> Result<SnapshotWriter, RaftError> {
        let temp = format!("{kind}-{}.tmp", NEXT_TEMP.fetch_add(1, Ordering::Relaxed));
        let file = self
            .dir
            .create(&temp)
            .map_err(|e| disk_error("cannot create snapshot file", &self.dir.path(&temp), &e))?;
        Ok(SnapshotWriter {
            files: self.clone(),
            temp,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            error: None,
        })
    }

    /// Writes `data` as the snapshot at (`term`, `index`).
    pub(crate) fn write_all(&self, term: u64, index: u64, data: &[u8]) -> Result<SnapshotId, RaftError> {
        let mut w = self.writer("local")?;
        // A write error is kept in the writer and reported by `finish`.
        let _ = w.write_all(data);
        w.finish(term, index)
    }

    /// Opens the file of the snapshot at (`term`, `index`) that `desc` describes, checking its
    /// length; the reader keeps working if the file is removed meanwhile.
    pub(crate) fn open_snapshot(
        &self,
        term: u64,
        index: u64,
        desc: &SnapshotDescriptor,
    ) -> Result<(Box<dyn Read + Send>, u64), RaftError> {
        let id = SnapshotId {
            term,
            index,
            sha256: desc.sha256,
        };
        let name = id.file_name();
        let path = self.dir.path(&name);
        let (reader, len) = self.dir.open(&name).map_err(|e| {
            RaftError::Storage(format!(
                "cannot open snapshot file {} (term {term}, index {index}): {e}; if it was removed, \
                 restart the member: it then takes a new snapshot or receives one from the leader",
                path.display()
            ))
        })?;
        if len != desc.size {
            return Err(RaftError::Storage(format!(
                "snapshot file {} holds {len} bytes, its descriptor says {}: it was damaged or cut \
                 short; remove it and restart the member",
                path.display(),
                desc.size
            )));
        }
        Ok((reader, len))
    }

    /// Whether the file of `id` exists.
    pub(crate) fn exists(&self, id: &SnapshotId) -> bool {
        self.dir.list().is_ok_and(|names| names.contains(&id.file_name()))
    }

    /// Removes snapshot files superseded by `keep` (every other one at or below its index), and
    /// temporary files too when `temps` (at start, when no writer runs). Files of newer
    /// snapshots stay: one may be received and about to be installed.
    pub(crate) fn clean(&self, keep: Option<&SnapshotId>, temps: bool) {
        let names = match self.dir.list() {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(dir = %self.dir.path("").display(), error = %e, "cannot list the snapshot directory; old snapshot files stay");
                return;
            }
        };
        let keep_name = keep.map(SnapshotId::file_name);
        for name in names {
            let superseded = match (SnapshotId::parse(&name), keep) {
                (Some((_, index)), Some(k)) => index <= k.index && Some(&name) != keep_name.as_ref(),
                _ => false,
            };
            if superseded || (temps && name.ends_with(".tmp")) {
                match self.dir.remove(&name) {
                    Ok(()) => {
                        tracing::debug!(file = %self.dir.path(&name).display(), "removed an old snapshot file")
                    }
                    Err(e) => {
                        tracing::warn!(file = %self.dir.path(&name).display(), error = %e, "cannot remove an old snapshot file")
                    }
                }
            }
        }
    }

    /// The names of the files, for tests and the simulation's checks.
    pub(crate) fn list(&self) -> Vec<String> {
        let mut names = self.dir.list().unwrap_or_default();
        names.sort();
        names
    }
}

/// A snapshot file being written under a temporary name; it hashes and counts what it is given.
/// Dropped before [`SnapshotWriter::finish`], it removes the file.
pub(crate) struct SnapshotWriter {
    files: SnapshotFiles,
    temp: String,
    file: Option<Box<dyn WriteFile>>,
    hasher: Sha256,
    size: u64,
    /// The first write error, reported by `finish` (callers may swallow it on the way).
    error: Option<io::ErrorKind>,
}

impl Write for SnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the snapshot file is closed"))?;
        match file.write_all(buf) {
            Ok(()) => {
                self.hasher.update(buf);
                self.size += buf.len() as u64;
                Ok(buf.len())
            }
            Err(e) => {
                self.error.get_or_insert(e.kind());
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl SnapshotWriter {
    /// Bytes written so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Where the file is being written.
    pub(crate) fn path(&self) -> PathBuf {
        self.files.dir.path(&self.temp)
    }

    /// Whether a write failed (the disk, not the caller).
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The sha256 of what was written so far.
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// Syncs the file and renames it to the name of the snapshot at (`term`, `index`).
    ///
    /// # Errors
    ///
    /// [`RaftError::Storage`] naming the file, when a write, the sync or the rename failed.
    pub(crate) fn finish(mut self, term: u64, index: u64) -> Result<SnapshotId, RaftError> {
        let path = self.files.dir.path(&self.temp);
        if let Some(kind) = self.error {
            return Err(disk_error(
                "cannot write snapshot file",
                &path,
                &io::Error::from(kind),
            ));
        }
        let mut file = self.file.take().ok_or(RaftError::Stopped)?;
        file.sync()
            .map_err(|e| disk_error("cannot write snapshot file", &path, &e))?;
        drop(file);
        let id = SnapshotId {
            term,
            index,
            sha256: self.digest(),
        };
        self.files
            .dir
            .rename(&self.temp, &id.file_name())
            .map_err(|e| disk_error("cannot rename snapshot file", &path, &e))?;
        self.temp.clear();
        Ok(id)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.temp.is_empty() {
            return;
        }
        drop(self.file.take());
        if let Err(e) = self.files.dir.remove(&self.temp) {
            tracing::warn!(file = %self.files.dir.path(&self.temp).display(), error = %e, "cannot remove an unfinished snapshot file");
        }
    }
}

/// Reads a snapshot file for installing it, hashing what passes; [`HashingReader::verify`]
/// then reads the rest and checks the size and digest.
pub(crate) struct HashingReader {
    inner: Box<dyn Read + Send>,
    hasher: Sha256,
    read: u64,
}

impl HashingReader {
    pub(crate) fn new(inner: Box<dyn Read + Send>) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// Reads what the consumer left and compares the whole with `desc`.
    pub(crate) fn verify(mut self, desc: &SnapshotDescriptor, path: &Path) -> Result<(), RaftError> {
        io::copy(&mut self, &mut io::sink())
            .map_err(|e| disk_error("cannot read snapshot file", path, &e))?;
        let sha256: [u8; 32] = self.hasher.finalize().into();
        if self.read != desc.size || sha256 != desc.sha256 {
            return Err(RaftError::Storage(format!(
                "snapshot file {} changed after it was received: {} bytes with sha256 {}, expected \
                 {} bytes with sha256 {}; check the disk, then restart the member",
                path.display(),
                self.read,
                hex(&sha256),
                desc.size,
                desc.sha256_hex()
            )));
        }
        Ok(())
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_renamed_and_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(&dir.path().join("snaps")).unwrap();
        let a = files.write_all(1, 10, b"ten").unwrap();
        let b = files.write_all(2, 20, b"twenty").unwrap();
        let newer = files.write_all(2, 30, b"thirty").unwrap();
        let unfinished = files.writer("incoming").unwrap();
        assert_eq!(files.list().len(), 4);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(files.path(&a)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        files.clean(Some(&b), false);
        let names = files.list();
        assert!(!names.contains(&a.file_name()), "{names:?}");
        assert!(names.contains(&b.file_name()) && names.contains(&newer.file_name()));
        assert_eq!(
            names.len(),
            3,
            "a temp file stays while its writer runs: {names:?}"
        );
        drop(unfinished);
        assert_eq!(
            files.list().len(),
            2,
            "an unfinished file is removed with its writer"
        );

        let desc = SnapshotDescriptor {
            members: Default::default(),
            size: 6,
            sha256: b.sha256,
        };
        let (r, len) = files.open_snapshot(2, 20, &desc).unwrap();
        assert_eq!(len, 6);
        let mut reader = HashingReader::new(r);
        let mut first = [0u8; 2];
        reader.read_exact(&mut first).unwrap();
        reader.verify(&desc, Path::new("x")).unwrap();
        let wrong = SnapshotDescriptor {
            size: 7,
            ..desc.clone()
        };
        let Err(err) = files.open_snapshot(2, 20, &wrong) else {
            panic!("a file of the wrong length opened");
        };
        let err = err.to_string();
        assert!(err.contains("holds 6 bytes"), "{err}");
        let (r, _) = files.open_snapshot(2, 20, &desc).unwrap();
        let other = SnapshotDescriptor {
            sha256: [0; 32],
            ..desc
        };
        assert!(HashingReader::new(r).verify(&other, Path::new("x")).is_err());
        assert_eq!(SnapshotId::parse(&b.file_name()), Some((2, 20)));
        assert_eq!(SnapshotId::parse("2-20.snap"), None);
    }
}

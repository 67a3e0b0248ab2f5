//! The audit log: one JSON line per write and per refused request, on the member that handled it.
//!
//! Lines go through a bounded queue to one writer thread, which appends them to
//! `<state dir>/audit/audit.log` and flushes after each batch (a line reaches the file at most
//! 25 ms after its request); a request whose line does not fit in the queue waits for room
//! (nothing is dropped). When the file passes [`MAX_FILE_BYTES`] it
//! becomes `audit.log.1` (the older `.1` becomes `.2`, and so on up to [`KEPT_FILES`]) and a new
//! file is started. Bodies are never recorded, so Secret values never reach the log.
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use skiff_api::AuditRecord;
use tokio::sync::mpsc;

/// Size at which the file is rotated.
pub(crate) const MAX_FILE_BYTES: u64 = 8 << 20;
/// Rotated files kept besides the current one.
pub(crate) const KEPT_FILES: usize = 2;
/// Lines waiting for the writer.
const QUEUE: usize = 4096;
/// How long the writer lets lines gather after a batch before it takes the next. Besides saving
/// wake-ups, few appends keep the audit file's metadata out of most of the state database's
/// fsyncs (ext4 commits every changed file's metadata, and in ordered mode its data, with them).
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(25);
/// Most records one read returns.
pub(crate) const MAX_READ: usize = 10_000;

/// Where records go: a handle on the writer thread (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    tx: mpsc::Sender<Vec<u8>>,
    dir: PathBuf,
}

impl AuditLog {
    /// Starts the writer for `dir` (created when missing).
    ///
    /// # Errors
    /// When the directory or file cannot be opened.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("audit.log");
        let file = append(&path)?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("skiff-audit".into())
            .spawn(move || {
                let mut w = Writer {
                    size: file.metadata().map(|m| m.len()).unwrap_or(0),
                    file: BufWriter::with_capacity(64 << 10, file),
                    path,
                };
                // Parked while idle; under load, woken at most once per BATCH_WINDOW (a wake-up
                // per request would cost more than the writing).
                while let Some(line) = rx.blocking_recv() {
                    w.write(&line);
                    while let Ok(more) = rx.try_recv() {
                        w.write(&more);
                    }
                    if let Err(e) = w.file.flush() {
                        tracing::error!(error = %e, "audit: cannot flush the audit log");
                    }
                    std::thread::sleep(BATCH_WINDOW);
                }
            })?;
        Ok(AuditLog {
            tx,
            dir: dir.to_owned(),
        })
    }

    /// Records `r` (waits while the queue is full).
    pub(crate) async fn record(&self, r: &AuditRecord) {
        let mut line = match serde_json::to_vec(r) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit: cannot encode a record");
                return;
            }
        };
        line.push(b'\n');
        if self.tx.send(line).await.is_err() {
            tracing::error!(request = %r.request_id, "audit: the writer has stopped; record lost");
        }
    }

    /// The newest `limit` records (oldest first), from the rotated files and the current one.
    ///
    /// # Errors
    /// When a file cannot be read.
    pub(crate) fn recent(&self, limit: usize) -> std::io::Result<Vec<AuditRecord>> {
        let limit = limit.min(MAX_READ);
        let mut out = std::collections::VecDeque::with_capacity(limit);
        let current = self.dir.join("audit.log");
        let files = (1..=KEPT_FILES)
            .rev()
            .map(|n| rotated(&current, n))
            .chain([current.clone()]);
        for path in files {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).lines() {
                // A line being written while we read is incomplete: it is skipped.
                if let Ok(r) = serde_json::from_str::<AuditRecord>(&line?) {
                    if out.len() == limit {
                        out.pop_front();
                    }
                    out.push_back(r);
                }
            }
        }
        Ok(out.into())
    }
}

struct Writer {
    /// Flushed after every batch the queue hands over.
    file: BufWriter<File>,
    path: PathBuf,
    size: u64,
}

impl Writer {
    fn write(&mut self, line: &[u8]) {
        if self.size + line.len() as u64 > MAX_FILE_BYTES && self.size > 0 {
            self.rotate();
        }
        match self.file.write_all(line) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => tracing::error!(error = %e, path = %self.path.display(), "audit: cannot write"),
        }
    }

    fn rotate(&mut self) {
        let _ = self.file.flush();
        for n in (1..KEPT_FILES).rev() {
            let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        if let Err(e) = std::fs::rename(&self.path, rotated(&self.path, 1)) {
            tracing::error!(error = %e, "audit: cannot rotate the audit log; writing on");
            return;
        }
        match append(&self.path) {
            Ok(f) => {
                self.file = BufWriter::with_capacity(64 << 10, f);
                self.size = 0;
            }
            Err(e) => tracing::error!(error = %e, "audit: cannot start a new audit log"),
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use skiff_api::AuditRecord;

    use super::{AuditLog, KEPT_FILES, MAX_FILE_BYTES};

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            time: "2026-12-07T10:00:00.000Z".into(),
            request_id: format!("r{i}"),
            caller: "admin".into(),
            source: "127.0.0.1:5000".into(),
            method: "PUT".into(),
            verb: "update".into(),
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: "x".repeat(2000),
            code: 200,
            reason: String::new(),
        }
    }

    #[tokio::test]
    async fn records_are_appended_rotated_and_read_back_newest_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(dir.path()).expect("open");
        // Enough to rotate more than KEPT_FILES times (each line is about 2.2 KB).
        let n = (MAX_FILE_BYTES as usize / 2000) * (KEPT_FILES + 2);
        for i in 0..n {
            log.record(&record(i)).await;
        }
        let last = format!("r{}", n - 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let got = log.recent(3).expect("read");
            if got.last().is_some_and(|r| r.request_id == last) {
                assert_eq!(got.len(), 3);
                assert_eq!(got[0].request_id, format!("r{}", n - 3));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the writer never caught up");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(
            files.len(),
            1 + KEPT_FILES,
            "the current file and {KEPT_FILES} rotated"
        );
        for f in files {
            let len = f.expect("entry").metadata().expect("meta").len();
            assert!(len <= MAX_FILE_BYTES, "a file grew to {len}");
        }
    }
}

//! A container's output on disk: stdout and stderr in `output.log`, size-capped and rotated.
//!
//! The shim reads the container's output from a pipe and appends it to `output.log`; when the
//! file reaches [`LogLimits::file_bytes`] it becomes `output.log.1` (the older ones move up to
//! `.2`, `.3`, …) and a new `output.log` starts. At most [`LogLimits::files`] files are kept, so
//! a container that writes without end uses at most `file_bytes × files` bytes of disk. Readers
//! see the newest output first ([`tail`]) and follow the current file across rotations
//! ([`read_from`]). Every file is created `0600`: output may hold what secrets printed.
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The current output file's name in a container's directory.
pub const OUTPUT_LOG: &str = "output.log";

/// How much output a container keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Largest size of one file, in bytes.
    pub file_bytes: u64,
    /// Files kept, the current one included (at least 1).
    pub files: u32,
}

impl Default for LogLimits {
    /// 8 MiB per file, 3 files: at most 24 MiB per container.
    fn default() -> Self {
        LogLimits {
            file_bytes: 8 << 20,
            files: 3,
        }
    }
}

/// The path of output file `n` (0: the current one; `n`: the `n`-th older one).
pub fn output_file(dir: &Path, n: u32) -> PathBuf {
    if n == 0 {
        dir.join(OUTPUT_LOG)
    } else {
        dir.join(format!("{OUTPUT_LOG}.{n}"))
    }
}

fn open_current(dir: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(output_file(dir, 0))
}

/// Moves `output.log` to `.1`, `.1` to `.2`, …, dropping what would be beyond `files`.
fn rotate(dir: &Path, files: u32) -> io::Result<()> {
    let files = files.max(1);
    if files == 1 {
        return fs::remove_file(output_file(dir, 0));
    }
    let _ = fs::remove_file(output_file(dir, files - 1));
    for n in (0..files - 1).rev() {
        match fs::rename(output_file(dir, n), output_file(dir, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Copies `input` to the output files of `dir` until it ends, rotating at `limits`.
///
/// # Errors
/// A file cannot be opened, written or rotated (the rest of the input is then drained unwritten,
/// so the container never blocks on a full pipe).
pub fn copy_rotating(mut input: impl Read, dir: &Path, limits: LogLimits) -> io::Result<()> {
    let cap = limits.file_bytes.max(1);
    let result = (|| {
        let mut out = open_current(dir)?;
        let mut size = out.metadata()?.len();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut chunk = &buf[..n];
            while !chunk.is_empty() {
                if size >= cap {
                    drop(out);
                    rotate(dir, limits.files)?;
                    out = open_current(dir)?;
                    size = 0;
                }
                let room = usize::try_from(cap - size).unwrap_or(usize::MAX).min(chunk.len());
                out.write_all(&chunk[..room])?;
                size += room as u64;
                chunk = &chunk[room..];
            }
        }
    })();
    if result.is_err() {
        let _ = io::copy(&mut input, &mut io::sink());
    }
    result
}

/// The newest `max` bytes of output, across rotated files (oldest first in the result).
pub fn tail(dir: &Path, max: u64) -> String {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut left = max;
    let mut n = 0;
    while left > 0 {
        let Ok(mut f) = fs::File::open(output_file(dir, n)) else {
            break;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let take = len.min(left);
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(len - take)).is_ok() {
            let _ = f.take(take).read_to_end(&mut buf);
        }
        left -= buf.len() as u64;
        parts.push(buf);
        n += 1;
    }
    let bytes: Vec<u8> = parts.into_iter().rev().flatten().collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What the current output file holds from `offset` on (at most `max` bytes), and the offset to
/// read from next. When the file was rotated since (it is shorter than `offset`), the rest of the
/// file it became (`output.log.1`) comes first and reading goes on from the start of the new one.
pub fn read_from(dir: &Path, offset: u64, max: u64) -> (Vec<u8>, u64) {
    let read = |path: PathBuf, at: u64| -> Vec<u8> {
        let mut buf = Vec::new();
        if let Ok(mut f) = fs::File::open(path)
            && f.seek(SeekFrom::Start(at)).is_ok()
        {
            let _ = f.take(max).read_to_end(&mut buf);
        }
        buf
    };
    let len = fs::metadata(output_file(dir, 0)).map_or(0, |m| m.len());
    if len < offset {
        let rest = read(output_file(dir, 1), offset);
        return (rest, 0);
    }
    let got = read(output_file(dir, 0), offset);
    let next = offset + got.len() as u64;
    (got, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn output_is_capped_rotated_and_read_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            file_bytes: 100,
            files: 3,
        };
        let input: Vec<u8> = (0..1000u32)
            .flat_map(|i| format!("{:04}\n", i).into_bytes())
            .collect();
        copy_rotating(&input[..], dir.path(), limits).unwrap();
        let mut total = 0;
        for n in 0..3 {
            let m = fs::metadata(output_file(dir.path(), n)).unwrap();
            assert!(m.len() <= 100, "file {n} has {} bytes", m.len());
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
            total += m.len();
        }
        assert!(!output_file(dir.path(), 3).exists(), "only 3 files are kept");
        assert_eq!(total, 300);
        let t = tail(dir.path(), 1 << 20);
        assert!(t.ends_with("0999\n") && t.len() == 300, "{t}");
        assert_eq!(tail(dir.path(), 10), "0998\n0999\n");
    }

    #[test]
    fn a_follower_keeps_up_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            file_bytes: 10,
            files: 2,
        };
        copy_rotating(&b"abcdef"[..], dir.path(), limits).unwrap();
        let (got, off) = read_from(dir.path(), 0, 1 << 20);
        assert_eq!((&got[..], off), (&b"abcdef"[..], 6));
        copy_rotating(&b"ghijklm"[..], dir.path(), limits).unwrap();
        let (got, off) = read_from(dir.path(), off, 1 << 20);
        assert_eq!((&got[..], off), (&b"ghij"[..], 0), "the rest of the rotated file");
        let (got, off) = read_from(dir.path(), off, 1 << 20);
        assert_eq!((&got[..], off), (&b"klm"[..], 3));
    }

    #[test]
    fn one_file_means_truncate_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            file_bytes: 4,
            files: 1,
        };
        copy_rotating(&b"0123456789"[..], dir.path(), limits).unwrap();
        assert_eq!(tail(dir.path(), 100), "89");
    }
}

//! A simulated snapshot directory: files in memory, and a crash loses every file not synced.
//!
//! A rename and a removal are durable at once (the real directory syncs after each), so what a
//! crash keeps is exactly what the driver made durable.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::snapshot::files::{Dir, WriteFile};

#[derive(Default)]
struct File {
    data: Arc<Vec<u8>>,
    synced: bool,
}

/// The files of one simulated node; clones share them.
#[derive(Clone, Default)]
pub(crate) struct SimFiles(Arc<Mutex<BTreeMap<String, File>>>);

impl SimFiles {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, File>> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every file that was not synced.
    pub(crate) fn crash(&self) {
        self.lock().retain(|_, f| f.synced);
    }
}

/// Appends to one file.
struct Writer {
    files: SimFiles,
    name: String,
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut files = self.files.lock();
        let file = files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the file was removed"))?;
        Arc::make_mut(&mut file.data).extend_from_slice(buf);
        file.synced = false;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for Writer {
    fn sync(&mut self) -> io::Result<()> {
        let mut files = self.files.lock();
        let file = files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the file was removed"))?;
        file.synced = true;
        Ok(())
    }
}

/// Reads a file's content as it was when opened.
struct Reader(io::Cursor<Bytes>);

struct Bytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

fn missing(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

impl Dir for SimFiles {
    fn create(&self, name: &str) -> io::Result<Box<dyn WriteFile>> {
        let mut files = self.lock();
        if files.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, name.to_owned()));
        }
        files.insert(name.to_owned(), File::default());
        Ok(Box::new(Writer {
            files: self.clone(),
            name: name.to_owned(),
        }))
    }

    fn open(&self, name: &str) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let files = self.lock();
        let file = files.get(name).ok_or_else(|| missing(name))?;
        let len = file.data.len() as u64;
        Ok((Box::new(Reader(io::Cursor::new(Bytes(file.data.clone())))), len))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.lock();
        let file = files.remove(from).ok_or_else(|| missing(from))?;
        files.insert(to.to_owned(), file);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.lock().remove(name);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("sim-snapshots").join(name)
    }
}

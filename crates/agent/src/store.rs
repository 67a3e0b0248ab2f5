//! The agent's local state: the pods assigned to this node, as last seen from the control plane.
//!
//! One redb file, `<data dir>/agent.redb`, with one table keyed by pod uid whose values are the
//! pods' JSON. The whole assigned set is replaced in one transaction whenever it changes, so a
//! reader (the next start of the agent) sees either the old set or the new one, never a mix.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use skiff_api::Pod;

use crate::error::AgentError;

/// Pod uid → the pod's JSON.
const PODS: TableDefinition<&str, &[u8]> = TableDefinition::new("skiff_agent_pods");

/// The local store of assigned pods. Closed explicitly when the agent stops, so that a new agent
/// can open the same directory in the same process.
pub(crate) struct LocalStore {
    path: PathBuf,
    db: Mutex<Option<Database>>,
}

fn storage(path: &Path, e: impl std::fmt::Display) -> AgentError {
    AgentError::Storage {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl LocalStore {
    /// Opens (or creates) the store at `path`.
    pub(crate) fn open(path: PathBuf) -> Result<Self, AgentError> {
        let db = Database::create(&path)
            .map_err(|e| storage(&path, format!("{e} (is another agent using this directory?)")))?;
        Ok(LocalStore {
            path,
            db: Mutex::new(Some(db)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, AgentError>) -> Result<T, AgentError> {
        let guard = self.db.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(db) => f(db),
            None => Err(storage(&self.path, "the store is closed (the agent stopped)")),
        }
    }

    /// The stored pods, in uid order. A record that no longer decodes is skipped with a warning.
    pub(crate) fn load(&self) -> Result<Vec<Pod>, AgentError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| storage(&self.path, e))?;
            let table = match txn.open_table(PODS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(storage(&self.path, e)),
            };
            let mut pods = Vec::new();
            for item in table.iter().map_err(|e| storage(&self.path, e))? {
                let (uid, value) = item.map_err(|e| storage(&self.path, e))?;
                match serde_json::from_slice::<Pod>(value.value()) {
                    Ok(p) => pods.push(p),
                    Err(e) => tracing::warn!(
                        uid = uid.value(),
                        path = %self.path.display(),
                        error = %e,
                        "skipping a stored pod that does not decode"
                    ),
                }
            }
            Ok(pods)
        })
    }

    /// Replaces the stored set with `pods`, in one transaction.
    pub(crate) fn save(&self, pods: &[Pod]) -> Result<(), AgentError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(|e| storage(&self.path, e))?;
            txn.delete_table(PODS).map_err(|e| storage(&self.path, e))?;
            {
                let mut table = txn.open_table(PODS).map_err(|e| storage(&self.path, e))?;
                for p in pods {
                    let uid = p.metadata.uid.as_deref().unwrap_or_default();
                    let json = serde_json::to_vec(p).map_err(|e| storage(&self.path, e))?;
                    table
                        .insert(uid, json.as_slice())
                        .map_err(|e| storage(&self.path, e))?;
                }
            }
            txn.commit().map_err(|e| storage(&self.path, e))
        })
    }

    /// Closes the database file; later loads and saves fail with [`AgentError::Storage`].
    pub(crate) fn close(&self) {
        self.db.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::ObjectMeta;

    fn pod(name: &str, uid: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: name.into(),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_set_is_replaced_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.redb");
        let store = LocalStore::open(path.clone()).unwrap();
        assert!(store.load().unwrap().is_empty());
        store.save(&[pod("a", "u1"), pod("b", "u2")]).unwrap();
        store.save(&[pod("b", "u2"), pod("c", "u3")]).unwrap();
        store.close();
        assert!(store.load().is_err(), "a closed store refuses reads");
        let store = LocalStore::open(path).unwrap();
        let names: Vec<String> = store
            .load()
            .unwrap()
            .into_iter()
            .map(|p| p.metadata.name)
            .collect();
        assert_eq!(names, ["b", "c"]);
    }
}

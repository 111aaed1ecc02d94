//! Which id a task run from a file has in the local state: the key of its runs, steps, progress
//! and watermarks in `DIR/state.sqlite`.
//!
//! - The spec's `id`, when it has one. The first run of a new `id` takes over the state its file
//!   had without one (or, in a data directory of a version before ids, the state kept under its
//!   name), so giving a task an `id` keeps its history: the id then names that older key.
//! - Otherwise an id derived once from the name (`local-<name>`, then `local-<name>-2`, ... when
//!   another file holds it) and recorded for the spec file's canonical path. Renaming the task in
//!   its file keeps its state; another file with the same name gets its own.
//!
//! Both records live in `DIR/task-ids.json`, written only under the data directory's lock. The
//! state itself never moves: earlier versions keyed it by [`name_task_id`], and a key adopted
//! from them stays what it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tidemark_core::TaskSpec;
use tidemark_core::ports::StateStore;
use tidemark_local::SqliteStore;

/// The file in the data directory that records task ids.
pub const TASK_IDS_FILE: &str = "task-ids.json";

/// A task's id, and what to tell the user the first time it is decided.
pub struct TaskIdentity {
    pub id: String,
    pub note: Option<String>,
}

/// The id of the task in `spec`, read from `spec_path`: looked up, or decided and recorded.
/// The caller holds the data directory's lock.
pub async fn resolve(
    store: &SqliteStore,
    data_dir: &Path,
    spec_path: &Path,
    spec: &TaskSpec,
) -> Result<TaskIdentity, String> {
    let path = data_dir.join(TASK_IDS_FILE);
    let mut ids = TaskIds::load(&path)?;
    let file = std::fs::canonicalize(spec_path)
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned));
    let decided = match (&spec.id, file) {
        (Some(id), file) => {
            if let Some(known) = ids.ids.get(id) {
                return Ok(known_id(known));
            }
            let by_name = name_task_id(&spec.name);
            let key = decide_for_id(store, &mut ids, id, file.as_deref(), &by_name).await?;
            let note = (key != *id).then(|| {
                format!(
                    "task id `{id}` is new here: it keeps the runs and watermarks this task had \
                     under `{key}` (recorded in {})",
                    path.display()
                )
            });
            TaskIdentity { id: key, note }
        }
        (None, Some(file)) => {
            if let Some(known) = ids.files.get(&file) {
                return Ok(known_id(known));
            }
            let key = derive(store, &ids, &name_task_id(&spec.name)).await?;
            let earlier = if has_runs(store, &key).await? {
                ", where runs of it already are"
            } else {
                ""
            };
            ids.release(&key);
            ids.files.insert(file.clone(), key.clone());
            let note = format!(
                "task `{}` has no `id`: its state is kept under `{key}`{earlier}, recorded for \
                 {file} in {} (renaming the task keeps it; an `id` in the spec keeps it wherever \
                 the file goes)",
                spec.name,
                path.display()
            );
            TaskIdentity {
                id: key,
                note: Some(note),
            }
        }
        (None, None) => {
            return Err(format!(
                "the path of {} cannot be recorded (it is not UTF-8): give the task an `id` in \
                 its spec",
                spec_path.display()
            ));
        }
    };
    ids.save(&path)?;
    Ok(decided)
}

/// The key a spec `id` seen for the first time gets, recorded: its own, unless state is already
/// kept under it, the state its file had without an `id`, or (a data directory of an earlier
/// version) the state kept under its name that no other task holds.
async fn decide_for_id(
    store: &SqliteStore,
    ids: &mut TaskIds,
    id: &str,
    file: Option<&str>,
    by_name: &str,
) -> Result<String, String> {
    let earlier = file.and_then(|f| ids.files.get(f)).cloned();
    let key = if has_runs(store, id).await? {
        id.to_owned()
    } else if let Some(earlier) = earlier {
        earlier
    } else if ids.claimable(by_name) && has_runs(store, by_name).await? {
        by_name.to_owned()
    } else {
        id.to_owned()
    };
    ids.release(&key);
    if let Some(file) = file
        && ids.files.get(file) == Some(&key)
    {
        // The file's state is the id's now: without its `id` again, it is a new task.
        ids.files.remove(file);
    }
    ids.ids.insert(id.to_owned(), key.clone());
    Ok(key)
}

fn known_id(id: &str) -> TaskIdentity {
    TaskIdentity {
        id: id.to_owned(),
        note: None,
    }
}

/// A new id for a task without one: its name's key when no other file holds it (an earlier
/// version's state under it is this task's), else the first free `<key>-2`, `<key>-3`, ....
async fn derive(store: &SqliteStore, ids: &TaskIds, by_name: &str) -> Result<String, String> {
    if ids.claimable(by_name) {
        return Ok(by_name.to_owned());
    }
    for n in 2..=u32::MAX {
        let key = format!("{by_name}-{n}");
        // Runs under a key nobody holds are an earlier version's task of that very name.
        if !ids.holds(&key) && !has_runs(store, &key).await? {
            return Ok(key);
        }
    }
    Err(format!(
        "no free task id is left for `{by_name}`: give the task an `id` in its spec"
    ))
}

async fn has_runs(store: &SqliteStore, task_id: &str) -> Result<bool, String> {
    let runs = store
        .list_runs(task_id, 1, None)
        .await
        .map_err(|e| format!("cannot read the runs of `{task_id}`: {e}"))?;
    Ok(!runs.items.is_empty())
}

/// The key earlier versions kept a task's state under: its name, made safe for keys. It is
/// still the first choice of a derived id, so their data directories are adopted as they are.
pub fn name_task_id(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("local-{id}")
}

/// `DIR/task-ids.json`: spec ids and spec files, each to the id their state is kept under.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct TaskIds {
    /// A spec's `id` to its task id (the same, unless it adopted earlier state).
    #[serde(default)]
    ids: BTreeMap<String, String>,
    /// A spec file without an `id` (canonical path) to its derived task id.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

impl TaskIds {
    fn load(path: &Path) -> Result<TaskIds, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is not a record of task ids ({e}): restore it, or remove it to have \
                     ids derived again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TaskIds::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Written whole to a temporary file, then renamed over: a crash leaves the old or the new.
    fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| format!("cannot encode the task ids: {e}"))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Whether any record names `key`.
    fn holds(&self, key: &str) -> bool {
        self.ids
            .values()
            .chain(self.files.values())
            .any(|k| k == key)
    }

    /// Whether `key` may become another task's: no spec id holds it, and every file holding it
    /// is gone (the file was moved or deleted; its state goes with its name, as it always did).
    fn claimable(&self, key: &str) -> bool {
        !self.ids.values().any(|k| k == key)
            && self
                .files
                .iter()
                .filter(|(_, k)| *k == key)
                .all(|(f, _)| !PathBuf::from(f).exists())
    }

    /// Drops the records of gone files that hold `key`, which is about to be recorded anew.
    fn release(&mut self, key: &str) {
        self.files
            .retain(|f, k| k != key || PathBuf::from(f).exists());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_key_is_the_earlier_versions_key() {
        assert_eq!(name_task_id("Shop nightly/2"), "local-shop-nightly-2");
        assert_eq!(name_task_id("run-test"), "local-run-test");
    }

    #[test]
    fn a_key_held_by_a_live_file_or_an_id_is_not_claimable() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let live = dir.join("live.json");
        std::fs::write(&live, "{}").expect("file");
        let gone = dir.join("gone.json").to_string_lossy().into_owned();
        let mut ids = TaskIds::default();
        ids.files
            .insert(live.to_string_lossy().into_owned(), "local-a".into());
        ids.files.insert(gone.clone(), "local-b".into());
        ids.ids.insert("c".into(), "local-c".into());
        assert!(!ids.claimable("local-a"));
        assert!(ids.claimable("local-b"), "its file is gone");
        assert!(!ids.claimable("local-c"));
        assert!(ids.claimable("local-d"));
        ids.release("local-b");
        assert!(!ids.files.contains_key(&gone));
        ids.release("local-a");
        assert_eq!(ids.files.len(), 1, "a live file keeps its record");

        let path = dir.join(TASK_IDS_FILE);
        ids.save(&path).expect("save");
        assert_eq!(TaskIds::load(&path).expect("load"), ids);
        std::fs::write(&path, "{").expect("corrupt");
        let err = TaskIds::load(&path).expect_err("corrupt");
        assert!(err.contains("remove it"), "{err}");
    }
}

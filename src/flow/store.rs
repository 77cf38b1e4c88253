//! In-memory registry of validated flows (`FlowStore`), by id and by name.
//! Owns name uniqueness and loading a directory of JSON files; must not run
//! flows or keep per-call state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::error::FlowError;
use super::id::FlowId;
use super::model::Flow;

/// Concurrent flow registry. Flows are immutable once stored (`Arc<Flow>`),
/// so running activeflows keep their version when a flow is replaced.
#[derive(Debug, Default)]
pub struct FlowStore {
    flows: DashMap<FlowId, Arc<Flow>>,
    /// Non-empty names only; unnamed flows are reachable by id alone.
    names: DashMap<String, FlowId>,
}

impl FlowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates and stores `flow`, replacing any flow with the same id.
    /// Refuses a non-empty name already held by a different flow.
    pub fn insert(&self, flow: Flow) -> Result<Arc<Flow>, FlowError> {
        flow.validate()?;
        let id = flow.id;
        if !flow.name.is_empty() {
            // Claim the name atomically so two concurrent inserts cannot both
            // win it. The entry guard is dropped before touching `flows` so
            // the two maps are never locked together (no lock-order issues).
            match self.names.entry(flow.name.clone()) {
                Entry::Occupied(e) if *e.get() != id => {
                    return Err(FlowError::Flow {
                        field: "name".into(),
                        message: format!(
                            r#"name "{}" is already used by flow {}"#,
                            flow.name,
                            e.get()
                        ),
                    });
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert(id);
                }
            }
        }
        let flow = Arc::new(flow);
        if let Some(old) = self.flows.insert(id, flow.clone()) {
            // A rename releases the old name, but only if it still points here.
            if old.name != flow.name {
                self.names.remove_if(&old.name, |_, owner| *owner == id);
            }
        }
        Ok(flow)
    }

    /// The flow with `id`.
    pub fn get(&self, id: &FlowId) -> Option<Arc<Flow>> {
        self.flows.get(id).map(|f| f.value().clone())
    }

    /// Looks `s` up as a uuid first, then as a name (a name may itself look
    /// like a uuid of no stored flow).
    pub fn get_by_name_or_id(&self, s: &str) -> Option<Arc<Flow>> {
        if let Some(flow) = s.parse::<FlowId>().ok().and_then(|id| self.get(&id)) {
            return Some(flow);
        }
        let id = *self.names.get(s)?.value();
        self.get(&id)
    }

    /// Removes and returns the flow with `id`, releasing its name.
    pub fn remove(&self, id: &FlowId) -> Option<Arc<Flow>> {
        let (_, flow) = self.flows.remove(id)?;
        self.names.remove_if(&flow.name, |_, owner| owner == id);
        Some(flow)
    }

    /// All flows, sorted by name then id for stable listings.
    pub fn list(&self) -> Vec<Arc<Flow>> {
        let mut all: Vec<Arc<Flow>> = self.flows.iter().map(|f| f.value().clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        all
    }

    /// Number of stored flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is stored.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Loads every `*.json` file of `dir` (not recursive), in file-name order.
    /// All files are parsed and validated before any is stored, so a broken
    /// file leaves the store untouched; errors name the file. Returns the
    /// number of flows stored.
    pub fn load_dir(&self, dir: &Path) -> Result<usize, FlowError> {
        let io_err = |path: &Path, e: std::io::Error| FlowError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let path = entry.map_err(|e| io_err(dir, e))?.path();
            if path.is_file() && path.extension().is_some_and(|x| x == "json") {
                files.push(path);
            }
        }
        files.sort();

        let in_file = |path: &Path, e: FlowError| FlowError::File {
            path: path.display().to_string(),
            source: Box::new(e),
        };
        let mut parsed: Vec<(PathBuf, Flow)> = Vec::with_capacity(files.len());
        // Within one directory a repeated id or name is a mistake, not a
        // replacement; catch it before anything is stored.
        let mut seen_ids: HashMap<FlowId, usize> = HashMap::new();
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        for path in files {
            let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
            let flow = Flow::from_json(&bytes).map_err(|e| in_file(&path, e))?;
            let n = parsed.len();
            if let Some(&other) = seen_ids.get(&flow.id) {
                let message = format!("duplicate flow id (also in {})", parsed[other].0.display());
                return Err(in_file(&path, flow_field("id", message)));
            }
            if !flow.name.is_empty() {
                if let Some(&other) = seen_names.get(&flow.name) {
                    let message = format!(
                        "duplicate flow name (also in {})",
                        parsed[other].0.display()
                    );
                    return Err(in_file(&path, flow_field("name", message)));
                }
                seen_names.insert(flow.name.clone(), n);
            }
            seen_ids.insert(flow.id, n);
            parsed.push((path, flow));
        }

        let count = parsed.len();
        for (path, flow) in parsed {
            self.insert(flow).map_err(|e| in_file(&path, e))?;
        }
        Ok(count)
    }
}

fn flow_field(field: &str, message: String) -> FlowError {
    FlowError::Flow {
        field: field.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::Action;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn flow(name: &str) -> Flow {
        Flow::new(name, vec![Action::new("answer", json!({}))])
    }

    /// A fresh, unique directory under the system temp dir.
    fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flowstore-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn insert_get_remove() {
        let store = FlowStore::new();
        assert!(store.is_empty());
        let f = store.insert(flow("main")).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(&f.id).unwrap().name, "main");
        assert_eq!(store.get_by_name_or_id("main").unwrap().id, f.id);
        assert_eq!(store.get_by_name_or_id(&f.id.to_string()).unwrap().id, f.id);
        assert!(store.get_by_name_or_id("other").is_none());
        assert_eq!(store.remove(&f.id).unwrap().id, f.id);
        assert!(store.get_by_name_or_id("main").is_none());
        assert!(store.remove(&f.id).is_none());
    }

    #[test]
    fn insert_validates() {
        let store = FlowStore::new();
        let e = store.insert(Flow::new("x", vec![])).unwrap_err();
        assert_eq!(e.to_string(), "actions: a flow needs at least one action");
        assert!(store.is_empty());
    }

    #[test]
    fn name_conflicts_and_replacement() {
        let store = FlowStore::new();
        let a = store.insert(flow("ivr")).unwrap();
        let e = store.insert(flow("ivr")).unwrap_err();
        assert!(
            matches!(e, FlowError::Flow { ref field, .. } if field == "name"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!(r#"name: name "ivr" is already used by flow {}"#, a.id)
        );

        // Same id may replace, including a rename that frees the old name.
        let mut renamed = (*a).clone();
        renamed.name = "ivr2".into();
        store.insert(renamed).unwrap();
        assert_eq!(store.len(), 1);
        assert!(store.get_by_name_or_id("ivr").is_none());
        assert_eq!(store.get_by_name_or_id("ivr2").unwrap().id, a.id);
        store.insert(flow("ivr")).unwrap();

        // Unnamed flows never conflict.
        store.insert(flow("")).unwrap();
        store.insert(flow("")).unwrap();
        assert_eq!(store.len(), 4);
        let names: Vec<String> = store.list().iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, ["", "", "ivr", "ivr2"]);
        let list = store.list();
        assert!(list[0].id < list[1].id);
    }

    #[test]
    fn load_dir_reads_sorted_json_files() {
        let dir = temp_dir();
        let doc = |name: &str| json!({"name": name, "actions": [{"type": "answer"}]}).to_string();
        std::fs::write(dir.join("b.json"), doc("second")).unwrap();
        std::fs::write(dir.join("a.json"), doc("first")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a flow").unwrap();
        std::fs::create_dir(dir.join("sub.json")).unwrap();
        let store = FlowStore::new();
        assert_eq!(store.load_dir(&dir).unwrap(), 2);
        assert!(store.get_by_name_or_id("first").is_some());
        assert!(store.get_by_name_or_id("second").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_dir_errors_name_the_file() {
        let dir = temp_dir();
        std::fs::write(
            dir.join("a.json"),
            r#"{"name":"ok","actions":[{"type":"answer"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("b.json"), r#"{"actions":[{"type":"sleep"}]}"#).unwrap();
        let store = FlowStore::new();
        let e = store.load_dir(&dir).unwrap_err();
        let path = dir.join("b.json").display().to_string();
        assert_eq!(
            e.to_string(),
            format!("{path}: actions[0].option.duration: missing required field")
        );
        assert!(store.is_empty(), "nothing stored when a file is broken");

        std::fs::write(
            dir.join("b.json"),
            r#"{"name":"ok","actions":[{"type":"stop"}]}"#,
        )
        .unwrap();
        let e = store.load_dir(&dir).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{path}: name: duplicate flow name")),
            "{e}"
        );

        std::fs::write(dir.join("b.json"), "{").unwrap();
        let e = store.load_dir(&dir).unwrap_err();
        assert!(
            matches!(e, FlowError::File { ref source, .. } if matches!(**source, FlowError::Json(_)))
        );

        // Name taken by a flow already in the store.
        std::fs::remove_file(dir.join("b.json")).unwrap();
        store.insert(flow("ok")).unwrap();
        let e = store.load_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("a.json: name: "), "{e}");

        std::fs::remove_dir_all(&dir).unwrap();
        let e = store.load_dir(&dir).unwrap_err();
        assert!(matches!(e, FlowError::Io { ref path, .. } if *path == dir.display().to_string()));
        assert!(e.to_string().starts_with("reading "));
    }
}

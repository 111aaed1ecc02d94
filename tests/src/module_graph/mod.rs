//! The import graph between the modules of one source directory, and a check that it has no
//! cycle: modules that import each other cannot be understood, tested or moved one at a time.
//!
//! A crate's test calls [`check_acyclic`] with the directory and its module path:
//!
//! ```no_run
//! let copy = concat!(env!("CARGO_MANIFEST_DIR"), "/src/copy");
//! if let Err(cycles) = tidemark_tests::module_graph::check_acyclic(copy, "copy") {
//!     panic!("{cycles}");
//! }
//! ```
//!
//! The directory's modules are its `.rs` files and sub-directories (`x.rs`, `x/mod.rs` and
//! `x/*.rs` are all module `x`); the directory's own `mod.rs` (or `lib.rs`, `main.rs`) is their
//! parent, not a module of the graph. Module `a` depends on module `b` when a file of `a`
//! names a path that resolves into `b`: `use super::b::..`, `use crate::<module path>::b::..`
//! (grouped `use super::{b, c}` and multi-line use trees too), or the same path written in code
//! (`&super::b::Column` in a signature is an import all the same). `super` and `self` resolve
//! from the module they are written in, so `use super::*` in a file's `mod tests` names the file
//! itself. Comments, doc links and string literals are not read. Not seen: a glob import of the
//! parent (`use super::*` in a file module) and a bare name the parent re-exports, since neither
//! names the module it comes from.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use paths::referenced_paths;

/// Fails, naming the modules of each cycle and where each of their imports is, when the modules
/// of `dir` import each other in a cycle. `module_path` is the directory's module path from the
/// crate root (`"copy"`, `"policy::incremental"`, `""` for the crate's `src/` itself; a leading
/// `crate::` may be written). An unreadable directory or file is an error too.
pub fn check_acyclic(dir: impl AsRef<Path>, module_path: &str) -> Result<(), String> {
    let dir = dir.as_ref();
    let graph = ModuleGraph::read_dir(dir, module_path)
        .map_err(|e| format!("reading the modules of {}: {e}", dir.display()))?;
    let cycles = graph.cycles();
    if cycles.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "the modules of {} ({}) import each other in a cycle; move what they share into a \
         module that imports neither:",
        graph.display_path(),
        dir.display()
    );
    for cycle in &cycles {
        message.push_str(&format!(
            "\n  {} reach each other, e.g. {}",
            cycle.modules.join(", "),
            graph.describe(&cycle.path)
        ));
    }
    Err(message)
}

/// The modules of one directory and which imports which.
#[derive(Debug, Clone, Default)]
pub struct ModuleGraph {
    /// The directory's module path from the crate root, as segments.
    prefix: Vec<String>,
    modules: BTreeSet<String>,
    /// `from -> to -> where` (the first import seen: file and line).
    edges: BTreeMap<String, BTreeMap<String, Site>>,
}

/// Modules that import each other, directly or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Every module that reaches every other (a strongly connected component), in name order.
    pub modules: Vec<String>,
    /// One cycle among them, from the first back to it: `[a, b, a]`.
    pub path: Vec<String>,
}

/// Where an import is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The file, relative to the directory.
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

impl ModuleGraph {
    /// Reads every `.rs` file under `dir` (see [`check_acyclic`] for `module_path`).
    pub fn read_dir(dir: &Path, module_path: &str) -> std::io::Result<ModuleGraph> {
        let mut files = Vec::new();
        collect_rs_files(dir, dir, &mut files)?;
        let mut sources = Vec::with_capacity(files.len());
        for (relative, path) in files {
            sources.push((relative, std::fs::read_to_string(&path)?));
        }
        Ok(ModuleGraph::from_sources(
            module_path,
            sources.iter().map(|(f, s)| (f.as_str(), s.as_str())),
        ))
    }

    /// The graph of files given as `(path relative to the directory, source)`, `/`-separated.
    pub fn from_sources<'a>(
        module_path: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> ModuleGraph {
        let prefix: Vec<String> = module_path
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .skip_while(|s| *s == "crate")
            .map(String::from)
            .collect();
        let files: Vec<(&str, &str)> = files.into_iter().collect();
        let mut graph = ModuleGraph {
            prefix,
            ..ModuleGraph::default()
        };
        let mut parsed = Vec::new();
        for (file, source) in files {
            let Some((node, module)) = file_module(file) else {
                continue;
            };
            graph.modules.insert(node.clone());
            parsed.push((file, node, module, source));
        }
        for (file, node, module, source) in parsed {
            let mut current = graph.prefix.clone();
            current.extend(module);
            for (path, line) in referenced_paths(source, &current) {
                let Some(target) = graph.module_of(&path) else {
                    continue;
                };
                if target != node {
                    graph
                        .edges
                        .entry(node.clone())
                        .or_default()
                        .entry(target)
                        .or_insert_with(|| Site {
                            file: file.to_owned(),
                            line,
                        });
                }
            }
        }
        graph
    }

    /// The directory's modules.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.modules.iter().map(String::as_str)
    }

    /// Every `(from, to)` import between two of the directory's modules.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.edges
            .iter()
            .flat_map(|(from, to)| to.keys().map(move |t| (from.as_str(), t.as_str())))
    }

    /// Where `from` first imports `to`.
    pub fn site(&self, from: &str, to: &str) -> Option<&Site> {
        self.edges.get(from)?.get(to)
    }

    /// Each group of modules that reach each other (two or more), with the shortest cycle
    /// through its first; empty for a DAG.
    pub fn cycles(&self) -> Vec<Cycle> {
        self.components()
            .into_iter()
            .filter(|c| c.len() > 1)
            .filter_map(|modules| {
                let path = self.cycle_within(&modules)?;
                Some(Cycle { modules, path })
            })
            .collect()
    }

    /// `a -> b (a.rs:3) -> a (b.rs:7)`.
    pub fn describe(&self, cycle: &[String]) -> String {
        let mut out = cycle.first().cloned().unwrap_or_default();
        for pair in cycle.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            match self.site(from, to) {
                Some(site) => out.push_str(&format!(" -> {to} ({site})")),
                None => out.push_str(&format!(" -> {to}")),
            }
        }
        out
    }

    fn display_path(&self) -> String {
        if self.prefix.is_empty() {
            "crate".to_owned()
        } else {
            format!("crate::{}", self.prefix.join("::"))
        }
    }

    /// The directory's module an absolute path (from the crate root) falls in.
    fn module_of(&self, path: &[String]) -> Option<String> {
        let rest = path.strip_prefix(self.prefix.as_slice())?;
        let first = rest.first()?;
        self.modules.contains(first).then(|| first.clone())
    }

    /// Tarjan's strongly connected components, in a deterministic order.
    fn components(&self) -> Vec<Vec<String>> {
        struct State<'g> {
            graph: &'g ModuleGraph,
            next: usize,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            out: Vec<Vec<String>>,
        }
        fn visit<'g>(s: &mut State<'g>, v: &'g str) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on_stack.insert(v);
            let graph = s.graph;
            for w in graph.edges.get(v).into_iter().flat_map(|t| t.keys()) {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                s.out.push(component);
            }
        }
        let mut state = State {
            graph: self,
            next: 0,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for m in &self.modules {
            if !state.index.contains_key(m.as_str()) {
                visit(&mut state, m);
            }
        }
        let mut out = state.out;
        out.sort();
        out
    }

    /// The shortest cycle through the component's first module, inside the component.
    fn cycle_within(&self, component: &[String]) -> Option<Vec<String>> {
        let start = component.first()?;
        let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start.as_str()]);
        while let Some(v) = queue.pop_front() {
            for w in self.edges.get(v).into_iter().flat_map(|t| t.keys()) {
                let w = w.as_str();
                if !inside.contains(w) {
                    continue;
                }
                if w == start {
                    let mut cycle = vec![start.clone()];
                    let mut at = v;
                    while at != start {
                        cycle.push(at.to_owned());
                        at = came_from.get(at)?;
                    }
                    cycle.push(start.clone());
                    cycle.reverse();
                    return Some(cycle);
                }
                if !came_from.contains_key(w) {
                    came_from.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        None
    }
}

fn collect_rs_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_rs_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((relative.join("/"), path));
        }
    }
    Ok(())
}

/// The directory's module a file belongs to, and the file's module path below the directory;
/// `None` for the directory's own `mod.rs`/`lib.rs`/`main.rs`, and for anything not `.rs`.
fn file_module(file: &str) -> Option<(String, Vec<String>)> {
    let mut segments: Vec<String> = file
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let last = segments.pop()?;
    let stem = last.strip_suffix(".rs")?;
    // `x/mod.rs` is `x`; the directory's own `mod.rs`/`lib.rs`/`main.rs` is the parent.
    let parent = segments.is_empty() && matches!(stem, "mod" | "lib" | "main");
    if stem != "mod" && !parent {
        segments.push(stem.to_owned());
    }
    let node = segments.first()?.clone();
    Some((node, segments))
}

mod paths;
#[cfg(test)]
mod tests;

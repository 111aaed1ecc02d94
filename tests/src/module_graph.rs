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

/// Every path anchored at `crate`, `super` or `self` that `source` names in a `use` or in code,
/// resolved from the module it is written in (`module`, plus any inline `mod x { }` around it),
/// with the line it starts on.
fn referenced_paths(source: &str, module: &[String]) -> Vec<(Vec<String>, usize)> {
    let tokens = tokenize(source);
    let mut out = Vec::new();
    // One entry per open brace: the inline module it opens, if it does.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    let current = |braces: &[Option<String>]| {
        let mut m = module.to_vec();
        m.extend(braces.iter().flatten().cloned());
        m
    };
    while i < tokens.len() {
        let token = &tokens[i];
        match token.text.as_str() {
            "{" => {
                braces.push(pending_mod.take());
                i += 1;
            }
            "}" => {
                braces.pop();
                pending_mod = None;
                i += 1;
            }
            ";" => {
                pending_mod = None;
                i += 1;
            }
            "mod" if token.ident => {
                pending_mod = tokens
                    .get(i + 1)
                    .filter(|t| t.ident)
                    .map(|t| t.text.clone());
                i += 2;
            }
            "use" if token.ident => {
                let line = token.line;
                let mut trees = Vec::new();
                i = parse_use_tree(&tokens, i + 1, Vec::new(), true, &mut trees);
                let here = current(&braces);
                for tree in trees {
                    if let Some(path) = resolve(&tree, &here) {
                        out.push((path, line));
                    }
                }
            }
            "crate" | "super" | "self"
                if token.ident
                    && tokens.get(i + 1).is_some_and(|t| t.text == "::")
                    && !(i > 0 && tokens[i - 1].text == "::") =>
            {
                let line = token.line;
                let in_visibility = i >= 3
                    && tokens[i - 1].text == "in"
                    && tokens[i - 2].text == "("
                    && tokens[i - 3].text == "pub";
                let mut path = vec![token.text.clone()];
                i += 1;
                while i + 1 < tokens.len() && tokens[i].text == "::" && tokens[i + 1].ident {
                    path.push(tokens[i + 1].text.clone());
                    i += 2;
                }
                if !in_visibility && let Some(path) = resolve(&path, &current(&braces)) {
                    out.push((path, line));
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Expands the use tree starting at `i` into full paths (`a::{b, c::d}` into `a::b`, `a::c::d`),
/// returning the index after it (`top`: past the `;` that ends the declaration).
fn parse_use_tree(
    tokens: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
    top: bool,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        let Some(token) = tokens.get(i) else {
            out.push(prefix);
            return i;
        };
        match token.text.as_str() {
            "::" => i += 1,
            "*" => {
                prefix.push("*".to_owned());
                i += 1;
            }
            "{" => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| t.text.as_str()) {
                        // A `;` inside a group is a broken tree (a macro's?): stop there.
                        None | Some(";") => break,
                        Some("}") => {
                            i += 1;
                            break;
                        }
                        Some(",") => i += 1,
                        Some(_) => i = parse_use_tree(tokens, i, prefix.clone(), false, out),
                    }
                }
                if top {
                    // Past the `;` that ends the declaration.
                    while tokens.get(i).is_some_and(|t| t.text != ";") {
                        i += 1;
                    }
                    return i + 1;
                }
                return i;
            }
            "as" if token.ident => i += 2,
            "," | "}" => {
                out.push(prefix);
                return i;
            }
            ";" => {
                out.push(prefix);
                return if top { i + 1 } else { i };
            }
            _ if token.ident => {
                prefix.push(token.text.clone());
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// An anchored path made absolute (from the crate root); `None` for a path into another crate
/// or a name in scope.
fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut absolute = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut base = module.to_vec();
            base.pop()?;
            base
        }
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|s| *s == "super") {
        absolute.pop()?;
        rest.next();
    }
    // `self` inside a group (`a::{self, b}`) names the group's prefix.
    absolute.extend(rest.filter(|s| *s != "self").cloned());
    Some(absolute)
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    ident: bool,
    line: usize,
}

/// Rust's tokens as far as paths need them: identifiers (keywords included), `::` and single
/// punctuation; comments, string, char and number literals and lifetimes are dropped.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let is_ident_start = |c: char| c == '_' || c.is_alphabetic();
    let is_ident = |c: char| c == '_' || c.is_alphanumeric();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i + 1, &mut line),
            // Raw strings: r"..", r#".."#, br"..", cr#".."#.
            'r' | 'b' | 'c' if raw_string_start(&chars, i).is_some() => {
                let (hashes, quote) = raw_string_start(&chars, i).unwrap_or((0, i));
                i = quote + 1;
                while i < chars.len() {
                    if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            // Byte and C strings, byte chars: b"..", c"..", b'.'.
            'b' | 'c' if at(i + 1) == '"' => i = skip_string(&chars, i + 2, &mut line),
            'b' if at(i + 1) == '\'' => i = skip_char(&chars, i + 1),
            '\'' => {
                if at(i + 1) == '\\' || at(i + 2) == '\'' {
                    i = skip_char(&chars, i);
                } else {
                    // A lifetime or a label.
                    i += 1;
                    while is_ident(at(i)) {
                        i += 1;
                    }
                }
            }
            ':' if at(i + 1) == ':' => {
                tokens.push(Token {
                    text: "::".into(),
                    ident: false,
                    line,
                });
                i += 2;
            }
            '$' if chars
                .get(i + 1..i + 6)
                .is_some_and(|s| s.iter().copied().eq("crate".chars()))
                && !is_ident(at(i + 6)) =>
            {
                // `$crate` in a macro is this crate.
                tokens.push(Token {
                    text: "crate".into(),
                    ident: true,
                    line,
                });
                i += 6;
            }
            _ if c.is_ascii_digit() => {
                while is_ident(at(i)) {
                    i += 1;
                }
            }
            _ if is_ident_start(c) => {
                // A raw identifier (`r#type`) is the identifier.
                if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
                    i += 2;
                }
                let start = i;
                while is_ident(at(i)) {
                    i += 1;
                }
                tokens.push(Token {
                    text: chars[start..i].iter().collect(),
                    ident: true,
                    line,
                });
            }
            _ => {
                tokens.push(Token {
                    text: c.to_string(),
                    ident: false,
                    line,
                });
                i += 1;
            }
        }
    }
    tokens
}

/// Past the closing quote of a string whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// Past a char literal whose opening quote is at `i`.
fn skip_char(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '\'' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// For a raw string starting at `i` (`r`, `br` or `cr`): its number of `#` and its opening
/// quote's index.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some((hashes, j + hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> ModuleGraph {
        ModuleGraph::from_sources("copy", files.iter().copied())
    }

    fn paths(cycles: &[Cycle]) -> Vec<Vec<String>> {
        cycles.iter().map(|c| c.path.clone()).collect()
    }

    fn edges(g: &ModuleGraph) -> Vec<(String, String)> {
        g.edges()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_cycle_is_found_and_named_with_its_imports() {
        let g = graph(&[
            (
                "mod.rs",
                "pub mod chunk;\npub mod session;\npub use chunk::X;\n",
            ),
            (
                "chunk.rs",
                "use std::fmt;\n\nuse super::session::Endpoints;\npub struct X;\n",
            ),
            ("session.rs", "use crate::copy::chunk::X;\n"),
        ]);
        let cycles = g.cycles();
        assert_eq!(paths(&cycles), [vec!["chunk", "session", "chunk"]]);
        assert_eq!(
            g.describe(&cycles[0].path),
            "chunk -> session (chunk.rs:3) -> chunk (session.rs:1)"
        );
    }

    #[test]
    fn a_longer_cycle_is_named_in_order() {
        let g = graph(&[
            ("a.rs", "use super::b::B;"),
            ("b.rs", "use super::c::C;"),
            ("c.rs", "use super::a::A;"),
            ("d.rs", "use super::a::A;"),
        ]);
        assert_eq!(paths(&g.cycles()), [vec!["a", "b", "c", "a"]]);
    }

    #[test]
    fn a_dag_passes() {
        let g = graph(&[
            ("a.rs", "use super::b::B;\nuse super::c::C;\n"),
            ("b.rs", "use super::c::C;\nuse crate::error::E;\n"),
            ("c.rs", "use std::io;\nuse serde::Serialize;\n"),
        ]);
        assert_eq!(edges(&g), pairs(&[("a", "b"), ("a", "c"), ("b", "c")]));
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn grouped_and_multi_line_uses_are_parsed() {
        let g = graph(&[
            ("a.rs", "use super::{b, c::C as Cee};\n"),
            (
                "b.rs",
                "use crate::copy::{\n    c::{\n        C,\n        D,\n    },\n    d::{self, E},\n};\n",
            ),
            ("c.rs", "pub use super::{\n    d::*,\n};\n"),
            ("d.rs", ""),
        ]);
        assert_eq!(
            edges(&g),
            pairs(&[("a", "b"), ("a", "c"), ("b", "c"), ("b", "d"), ("c", "d")])
        );
        assert_eq!(g.site("b", "d").map(|s| s.line), Some(1));
    }

    #[test]
    fn paths_written_in_code_count_and_comments_and_strings_do_not() {
        let g = graph(&[
            (
                "a.rs",
                r##"//! See [`super::c`] and /* super::c::X */ too.
/// Uses [`super::c::Y`].
fn f(key: &[&super::b::Column]) -> String {
    let brace = '{';
    let s = "use super::c::X; }";
    let r = r#"super::c::X"#;
    let _lifetime: &'static str = "";
    format!("{brace}{s}{r}")
}
"##,
            ),
            ("b.rs", ""),
            ("c.rs", "use super::a::f;"),
        ]);
        assert_eq!(edges(&g), pairs(&[("a", "b"), ("c", "a")]));
        assert_eq!(g.site("a", "b").map(|s| s.line), Some(3));
    }

    #[test]
    fn super_in_an_inline_module_names_the_file() {
        let g = graph(&[
            (
                "plan.rs",
                "pub fn by_size() {}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::{by_size, range};\n    use super::super::shape::Column;\n}\n",
            ),
            ("range.rs", ""),
            ("shape.rs", ""),
        ]);
        // `super::range` in plan's tests is plan's own item, not the sibling module.
        assert_eq!(edges(&g), pairs(&[("plan", "shape")]));
    }

    #[test]
    fn files_of_a_sub_directory_are_one_module() {
        let g = graph(&[
            ("a.rs", "use super::b::inner::X;"),
            ("b/mod.rs", "mod inner;\nuse super::c::Y;\n"),
            ("b/inner.rs", "use super::super::a::A;\nuse super::Z;\n"),
            ("c.rs", ""),
        ]);
        assert_eq!(edges(&g), pairs(&[("a", "b"), ("b", "a"), ("b", "c")]));
        assert_eq!(paths(&g.cycles()), [vec!["a", "b", "a"]]);
    }

    #[test]
    fn the_crate_root_directory_and_a_crate_prefix() {
        let root = ModuleGraph::from_sources(
            "",
            [
                ("lib.rs", "pub mod a;\npub mod b;\nuse crate::a::A;\n"),
                ("a.rs", "use crate::b::B;\n"),
                ("b.rs", "pub(in crate::a) struct B;\npub(crate) fn f() {}\n"),
            ],
        );
        assert_eq!(edges(&root), pairs(&[("a", "b")]));
        let nested = ModuleGraph::from_sources(
            "crate::policy::incremental",
            [
                ("a.rs", "use crate::policy::incremental::b::B;\n"),
                ("b.rs", "use crate::policy::a::A;\n"),
            ],
        );
        assert_eq!(edges(&nested), pairs(&[("a", "b")]));
    }

    #[test]
    fn every_module_of_a_tangle_is_named_with_one_of_its_cycles() {
        // The copy modules before their shared types moved out: four modules in one tangle.
        let g = graph(&[
            (
                "chunk.rs",
                "use super::session::E;\nuse super::verify::C;\nuse super::write;\n",
            ),
            (
                "session.rs",
                "use super::chunk::WriteMethod;\nuse super::verify::DigestSql;\n",
            ),
            ("verify.rs", "use super::session::E;\n"),
            (
                "write.rs",
                "use super::chunk::ChunkProgress;\nuse super::verify::RowDigest;\n",
            ),
            ("runner.rs", "use super::chunk::copy_chunk;\n"),
        ]);
        let cycles = g.cycles();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["chunk", "session", "verify", "write"]);
        assert_eq!(cycles[0].path, ["chunk", "session", "chunk"]);
    }

    #[test]
    fn a_top_level_group_and_a_broken_tree_stay_in_their_declaration() {
        let g = graph(&[
            ("a.rs", "use {super::b::B, crate::copy::c};\nfn f() {}\n"),
            ("b.rs", "use super::{c::C;\nuse super::d::D;\n"),
            ("c.rs", ""),
            ("d.rs", ""),
        ]);
        assert_eq!(
            edges(&g),
            pairs(&[("a", "b"), ("a", "c"), ("b", "c"), ("b", "d")])
        );
    }

    #[test]
    fn check_acyclic_reads_a_directory_and_names_the_cycle() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("mod.rs"), "mod a;\nmod b;\n").expect("write");
        std::fs::write(dir.path().join("a.rs"), "use super::b::B;\n").expect("write");
        std::fs::write(dir.path().join("b.rs"), "pub struct B;\n").expect("write");
        assert_eq!(check_acyclic(dir.path(), "copy"), Ok(()));

        std::fs::write(dir.path().join("b.rs"), "use super::a::A;\n").expect("write");
        let error = check_acyclic(dir.path(), "copy").expect_err("a cycle");
        assert!(error.contains("crate::copy"), "{error}");
        assert!(
            error.contains("a, b reach each other, e.g. a -> b (a.rs:1) -> a (b.rs:1)"),
            "{error}"
        );

        assert!(check_acyclic(dir.path().join("missing"), "copy").is_err());
    }
}

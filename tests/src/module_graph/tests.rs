//! The module graph over synthetic sources and a real temporary directory.

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

//! The modules of `copy/` import each other without a cycle: shared types live in leaf modules
//! (`copy/types.rs`), behaviour modules import downwards only.

use tidemark_tests::module_graph::check_acyclic;

#[test]
fn the_copy_modules_form_a_dag() {
    let copy = concat!(env!("CARGO_MANIFEST_DIR"), "/src/copy");
    if let Err(cycles) = check_acyclic(copy, "copy") {
        panic!("{cycles}");
    }
}

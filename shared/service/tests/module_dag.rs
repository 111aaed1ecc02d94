//! The service's modules import each other without a cycle: what a step works with (`context`,
//! `payload`) sits below the checks, the policies and the steps, and the driver above them; the
//! task service's concerns sit above the driver.

use tidemark_tests::module_graph::check_acyclic;

#[test]
fn the_service_modules_form_a_dag() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    if let Err(cycles) = check_acyclic(src, "") {
        panic!("{cycles}");
    }
}

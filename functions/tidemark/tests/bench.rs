//! The benchmark script, kept working: a small run of `infra/bench/bench.sh` with every
//! contender, against the test stack, with this build's `tidemark`. Its figures mean nothing at
//! this size; what is checked is that every contender ran and produced an exact copy.

use std::process::Command;

use tidemark_tests::harness::stack::repo_dir;
use tidemark_tests::harness::{destination, source, unique_name};

#[tokio::test]
async fn the_benchmark_runs_every_contender_and_each_copy_matches_the_source() {
    let db = unique_name("bench");
    let out = Command::new(repo_dir().join("infra/bench/bench.sh"))
        .args([
            "--rows",
            "3000",
            "--repeat",
            "1",
            "--workers",
            "2",
            "--keep-stack",
        ])
        .args(["--db", &db, "--tidemark", env!("CARGO_BIN_EXE_tidemark")])
        .output()
        .expect("run bench.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    source()
        .exec(&[&format!("DROP DATABASE IF EXISTS `{db}`")])
        .await;
    destination()
        .exec(&[&format!("DROP DATABASE IF EXISTS `{db}_copy`")])
        .await;
    assert!(out.status.success(), "bench.sh failed:\n{stdout}\n{stderr}");
    for contender in [
        "R",
        "L",
        "mysqldump",
        "mydumper",
        "tidemark",
        "tidemark-noverify",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(contender))
            .unwrap_or_else(|| panic!("no result for {contender}:\n{stdout}\n{stderr}"));
        assert!(line.ends_with("yes"), "{contender}'s copy differs: {line}");
    }
}

//! The workspace's packaging: the LICENSE file is the licence Cargo.toml names, and the binaries
//! hold one HTTP/TLS stack (the AWS SDK crates' legacy default client brings a second, older
//! hyper and rustls).

use tidemark_tests::harness::stack::repo_dir;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_license_file_is_the_workspace_license() {
    let manifest = repo_file("Cargo.toml");
    let license = manifest
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .expect("[workspace.package] names a license");
    assert_eq!(
        license, "\"Apache-2.0\"",
        "LICENSE holds the Apache-2.0 text"
    );
    let text = repo_file("LICENSE");
    let head: Vec<&str> = text.lines().take(3).map(str::trim).collect();
    assert_eq!(
        head,
        [
            "Apache License",
            "Version 2.0, January 2004",
            "http://www.apache.org/licenses/"
        ]
    );
    assert!(
        text.contains("END OF TERMS AND CONDITIONS"),
        "the whole licence text"
    );
}

/// The versions of a package in Cargo.lock.
fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let header = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    let mut versions = Vec::new();
    while let Some(line) = lines.next() {
        if line == header
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = "))
        {
            versions.push(version.trim_matches('"').to_owned());
        }
    }
    versions
}

#[test]
fn one_http_and_tls_stack_is_locked() {
    let lock = repo_file("Cargo.lock");
    for name in [
        "hyper",
        "rustls",
        "h2",
        "http",
        "hyper-rustls",
        "tokio-rustls",
    ] {
        let versions = locked_versions(&lock, name);
        assert!(
            versions.len() <= 1,
            "Cargo.lock holds {name} {versions:?}: an AWS SDK crate with its default features \
             (the legacy `rustls` client) brings a second HTTP/TLS stack"
        );
    }
    assert_eq!(locked_versions(&lock, "hyper").len(), 1);
}

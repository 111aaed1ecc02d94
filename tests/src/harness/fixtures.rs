//! Databases, users and row hashes on the stack's servers, for the end-to-end tests of every
//! target (`it`, `aws`).

use secrecy::SecretString;

use super::names::unique_name;
use super::server::Server;

/// A database on `server` made by `statements` (run inside it); returns its name.
pub async fn database(server: &Server, tag: &str, statements: &[&str]) -> String {
    let db = unique_name(tag);
    let create = format!("CREATE DATABASE `{db}`");
    let use_db = format!("USE `{db}`");
    let mut all = vec![create.as_str(), use_db.as_str()];
    all.extend_from_slice(statements);
    server.exec(&all).await;
    db
}

/// A user on `server` with the given grants (`ON ... ` clauses, the user appended); returns the
/// server as that user.
pub async fn user(server: &Server, tag: &str, grants: &[String]) -> Server {
    let name = unique_name(tag);
    let password = format!("pw-{name}");
    let mut statements = vec![format!(
        "CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'"
    )];
    statements.extend(
        grants
            .iter()
            .map(|g| format!("GRANT {g} TO '{name}'@'127.0.0.1'")),
    );
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    server.exec(&refs).await;
    Server::new(
        &server.role,
        server.port,
        &name,
        SecretString::from(password),
    )
}

/// An order-independent hash of a table's rows over the named columns (`count:sum`); empty when
/// the table is missing.
pub async fn rows_hash(server: &Server, db: &str, table: &str, columns: &str) -> String {
    server
        .query_one(&format!(
            "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('#', {columns}))), 0)) \
             FROM `{db}`.`{table}`"
        ))
        .await
        .unwrap_or_default()
}

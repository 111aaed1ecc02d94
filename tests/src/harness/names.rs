//! Names unique to one test, so that tests running at the same time never share a database.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `t_<tag>_<pid>_<n>_<nanos>`, at most 64 characters (MySQL's identifier limit), only
/// `[a-z0-9_]`, so it is also a valid queue, table or schedule name on the emulator.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let clean: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    format!("t_{clean}_{}_{n}_{nanos:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_plain() {
        let a = unique_name("Some Tag-With/Odd chars and a very long tail that goes on");
        let b = unique_name("Some Tag-With/Odd chars and a very long tail that goes on");
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a} is longer than 64");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
    }
}

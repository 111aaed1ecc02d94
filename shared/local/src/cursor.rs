//! The page cursors of the local state stores (SQLite and memory). A cursor names its listing
//! and the last key handed out, as DynamoDB's does, so a garbled cursor or one of another listing
//! is `BadCursor` (the port's contract) instead of a silent jump to some position.

use tidemark_core::ports::StoreError;

/// The listing of all tasks; a task's runs list as `TASK#<id>` (DynamoDB's partition names), so
/// the two cannot take each other's cursors.
pub(crate) const TASKS: &str = "TASKS";

pub(crate) fn runs_listing(task_id: &str) -> String {
    format!("TASK#{task_id}")
}

/// A cursor names its listing and the last key handed out, hex-encoded so that any id is safe
/// in a URL.
pub(crate) fn cursor(listing: &str, last: &str) -> String {
    format!("{}.{}", hex(listing), hex(last))
}

/// The key a listing continues after. A cursor of another listing, or one that is not in the
/// exact form [`cursor`] writes, was not handed out by this store: `BadCursor`.
pub(crate) fn resume(next: Option<&str>, listing: &str) -> Result<Option<String>, StoreError> {
    let Some(given) = next else {
        return Ok(None);
    };
    let last = given
        .split_once('.')
        .filter(|(of, _)| *of == hex(listing))
        .and_then(|(_, last)| unhex(last))
        .ok_or(StoreError::BadCursor)?;
    if cursor(listing, &last) == given {
        Ok(Some(last))
    } else {
        Err(StoreError::BadCursor)
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    // Lenient (`+f` and `AB` decode too): `resume` refuses any form but the one handed out.
    let bytes = digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_resumes_its_own_listing_after_its_key() {
        for key in ["tsk-00ff", "a.b#c/d é", ""] {
            let c = cursor(TASKS, key);
            assert!(c.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.'), "{c}");
            assert_eq!(
                resume(Some(&c), TASKS).expect("resume"),
                Some(key.to_owned())
            );
        }
        assert_eq!(resume(None, TASKS).expect("first page"), None);
    }

    #[test]
    fn foreign_or_garbled_cursors_are_refused() {
        let runs = cursor(&runs_listing("a"), "2026-12-01T02:30:00Z");
        let upper = cursor(TASKS, "tsk-1").to_uppercase();
        for (given, listing) in [
            (runs.as_str(), runs_listing("b")),
            (runs.as_str(), TASKS.to_owned()),
            (upper.as_str(), TASKS.to_owned()),
            ("garbage!", TASKS.to_owned()),
            ("tsk-1", TASKS.to_owned()),
            ("", TASKS.to_owned()),
            ("5441534b53.+f", TASKS.to_owned()),
            ("5441534b53.ff", TASKS.to_owned()),
            ("5441534b53.abc", TASKS.to_owned()),
        ] {
            assert!(
                matches!(resume(Some(given), &listing), Err(StoreError::BadCursor)),
                "{given:?} accepted for {listing}"
            );
        }
    }
}

//! JSON to [`TaskSpec`]: parse with paths in errors, then validate.

use jiff::civil::Date;
use serde::{Deserialize, Deserializer};

use super::{IncrementalPolicy, MultiReplicaPolicy, ResyncPolicy, TaskSpec};
use crate::error::{FieldError, SpecErrors, from_parse_error};

/// Parses and validates a task spec. A parse failure gives one error naming the path
/// (e.g. `source.tls.mode`); a valid parse that breaks rules gives every problem found.
pub fn parse_task_spec(json: &str) -> Result<TaskSpec, SpecErrors> {
    let mut de = serde_json::Deserializer::from_str(json);
    let spec: TaskSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let syntax = e.inner().is_syntax() || e.inner().is_eof();
        let mut err = from_parse_error(e);
        // serde_json reports a number, list or object where a named value (a string) is expected
        // as a syntax error ("expected value"). When the document is valid JSON, it is the value
        // at `path` that is wrong, and the user needs to be told which one.
        if syntax
            && !matches!(path.as_str(), "." | "?")
            && serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok()
        {
            err.field = path;
            err.message = "this value has the wrong type: expected one of its named values as a \
                           string (see the task spec in README)"
                .into();
        }
        if err.field == "policy" {
            refine_policy_error(json, &mut err);
        }
        SpecErrors::from(err)
    })?;
    de.end().map_err(|e| {
        SpecErrors::from(FieldError::new(
            "",
            format!("the body is not valid JSON: {e}; remove what follows the closing brace"),
        ))
    })?;
    spec.validate()?;
    Ok(spec)
}

/// `policy` is buffered before its variant is read (it is tagged by `mode`), so an error inside
/// it loses its path; read the variant again on its own to find the field.
fn refine_policy_error(json: &str, err: &mut FieldError) {
    let Ok(serde_json::Value::Object(mut top)) = serde_json::from_str(json) else {
        return;
    };
    let Some(serde_json::Value::Object(mut policy)) = top.remove("policy") else {
        return;
    };
    let Some(serde_json::Value::String(mode)) = policy.remove("mode") else {
        return;
    };
    let body = serde_json::Value::Object(policy);
    let inner = match mode.as_str() {
        "multi_replica" => variant_error::<MultiReplicaPolicy>(body),
        "resync" => variant_error::<ResyncPolicy>(body),
        "incremental" => variant_error::<IncrementalPolicy>(body),
        _ => None,
    };
    if let Some((path, text)) = inner {
        let location = err
            .message
            .rfind(" (at line ")
            .map(|i| err.message[i..].to_string())
            .unwrap_or_default();
        err.field = format!("policy.{path}");
        err.message = format!("{text}{location}");
    }
}

fn variant_error<T: serde::de::DeserializeOwned>(
    body: serde_json::Value,
) -> Option<(String, String)> {
    match serde_path_to_error::deserialize::<_, T>(body) {
        Ok(_) => None,
        Err(e) => {
            let path = e.path().to_string();
            (path != "." && path != "?").then(|| (path, e.inner().to_string()))
        }
    }
}

/// Reads a date as strict `YYYY-MM-DD`, with a message that says so.
pub(super) fn date<'de, D: Deserializer<'de>>(de: D) -> Result<Date, D::Error> {
    let s = String::deserialize(de)?;
    parse_date(&s).map_err(serde::de::Error::custom)
}

fn parse_date(s: &str) -> Result<Date, String> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let bad =
        |why: String| format!("expected a date as YYYY-MM-DD, e.g. \"2026-12-01\"; got {s:?}{why}");
    if !shape_ok {
        return Err(bad(String::new()));
    }
    s.parse::<Date>().map_err(|e| bad(format!(" ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_strict_iso() {
        assert_eq!(parse_date("2026-12-01"), Ok(jiff::civil::date(2026, 12, 1)));
        for bad in [
            "2026-2-01",
            "01/12/2026",
            "2026-12-01T00:00",
            "20261201",
            "2026-02-30",
            "",
        ] {
            let err = parse_date(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
    }
}

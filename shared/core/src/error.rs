//! Spec errors: one [`FieldError`] per problem, collected into [`SpecErrors`].

use serde::{Deserialize, Serialize};

/// One problem in a task spec: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Path of the offending field, e.g. `objects[0].tables[1].timestamp_column`;
    /// empty when the problem is not tied to a field (a JSON syntax error at the top).
    pub field: String,
    /// What is wrong and how to fix it. Never contains a password.
    pub message: String,
}

impl FieldError {
    /// A new error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Every problem found in a task spec, in the order found (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid task spec: {}", join(.0))]
pub struct SpecErrors(pub Vec<FieldError>);

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl SpecErrors {
    /// The field of the first error (`""` if there is none or it names no field).
    pub fn first_field(&self) -> &str {
        self.0.first().map_or("", |e| e.field.as_str())
    }

    /// The errors, in order.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// The first error reported at exactly `field`, if any.
    pub fn get(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|e| e.field == field)
    }
}

impl From<FieldError> for SpecErrors {
    fn from(e: FieldError) -> Self {
        SpecErrors(vec![e])
    }
}

/// Turns a parse failure into a [`FieldError`] whose `field` names the offending path.
pub(crate) fn from_parse_error(err: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let mut path = match err.path().to_string() {
        p if p == "." || p == "?" => String::new(),
        p => p,
    };
    let inner = err.inner();
    let raw = inner.to_string();
    // serde_json appends " at line L column C"; keep it, it helps find the spot.
    let (text, location) = match raw.rfind(" at line ") {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (raw.as_str(), ""),
    };
    let text = text.to_string();
    let message = if inner.is_syntax() || inner.is_eof() {
        // The path of a syntax error is wherever the parser had got to: often misleading.
        path.clear();
        format!("the body is not valid JSON: {text} ({location}); fix the JSON syntax there")
    } else if let Some(name) = between(&text, "missing field `", "`") {
        push_segment(&mut path, name);
        format!(
            "`{name}` is required but missing ({location}); add it (see the task spec in README)"
        )
    } else if let Some(name) = between(&text, "unknown field `", "`") {
        if !path_ends_with(&path, name) {
            push_segment(&mut path, name);
        }
        let expected = text
            .split_once(", expected ")
            .map(|(_, rest)| format!("; expected {rest}"))
            .unwrap_or_default();
        format!("unknown field `{name}` ({location}){expected}; remove it or fix its spelling")
    } else if let Some(name) = between(&text, "duplicate field `", "`") {
        if !path_ends_with(&path, name) {
            push_segment(&mut path, name);
        }
        format!("`{name}` is given twice ({location}); keep only one")
    } else if path
        .rsplit(['.', '['])
        .next()
        .is_some_and(|last| last.starts_with("password"))
    {
        // A type error would quote the value, and the value may be a password.
        format!("must be a string ({location}); the value is not shown because it may be a secret")
    } else if text.starts_with("unknown variant") {
        format!("{text} ({location}); use one of the listed values")
    } else {
        format!("{text} ({location})")
    };
    FieldError::new(path, message)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(start)?;
    rest.split_once(end).map(|(name, _)| name)
}

fn push_segment(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

fn path_ends_with(path: &str, name: &str) -> bool {
    path == name || path.ends_with(&format!(".{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_joins_all_errors() {
        let e = SpecErrors(vec![
            FieldError::new("name", "must not be empty"),
            FieldError::new("", "bad JSON"),
        ]);
        assert_eq!(
            e.to_string(),
            "invalid task spec: name: must not be empty; bad JSON"
        );
        assert_eq!(e.first_field(), "name");
        assert_eq!(SpecErrors(vec![]).first_field(), "");
    }
}

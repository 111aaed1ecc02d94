//! What CloudWatch would make of the functions' logs and template.yaml's alarms, for tests that
//! hold one to the other:
//! - [`FilterPattern`]: CloudWatch Logs' JSON filter-pattern syntax (`{ $.message = "run failed" }`),
//!   the subset template.yaml uses — selectors `$.a.b`, `=` and `!=` against a quoted string
//!   (a trailing `*` is a prefix match) or a number, `&&`, `||` and parentheses — evaluated over
//!   a JSON log line as CloudWatch evaluates it (a line that is not JSON matches nothing).
//! - [`template_resources`]: template.yaml's resources with their scalar properties, read from
//!   the template's fixed layout (resources at two spaces, properties deeper).

use std::collections::BTreeMap;

use serde_json::Value;

/// A parsed JSON filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterPattern {
    Compare {
        path: Vec<String>,
        equal: bool,
        value: Literal,
    },
    And(Box<FilterPattern>, Box<FilterPattern>),
    Or(Box<FilterPattern>, Box<FilterPattern>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
}

impl FilterPattern {
    /// Parses `{ ... }`; an error names what it could not read.
    pub fn parse(pattern: &str) -> Result<FilterPattern, String> {
        let inner = pattern
            .trim()
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .ok_or_else(|| format!("not a JSON filter pattern (no braces): {pattern}"))?;
        let mut parser = Parser { rest: inner.trim() };
        let parsed = parser.or()?;
        if !parser.rest.trim().is_empty() {
            return Err(format!("unexpected `{}` in {pattern}", parser.rest));
        }
        Ok(parsed)
    }

    /// Whether CloudWatch would count `line`.
    pub fn matches(&self, line: &str) -> bool {
        serde_json::from_str::<Value>(line).is_ok_and(|v| self.matches_value(&v))
    }

    fn matches_value(&self, line: &Value) -> bool {
        match self {
            FilterPattern::And(a, b) => a.matches_value(line) && b.matches_value(line),
            FilterPattern::Or(a, b) => a.matches_value(line) || b.matches_value(line),
            FilterPattern::Compare { path, equal, value } => {
                let found = path.iter().try_fold(line, |v, key| v.get(key));
                let same = match (found, value) {
                    (Some(Value::String(s)), Literal::Text(t)) => match t.strip_suffix('*') {
                        Some(prefix) => s.starts_with(prefix),
                        None => s == t,
                    },
                    (Some(Value::Number(n)), Literal::Number(x)) => n.as_f64() == Some(*x),
                    _ => false,
                };
                // A missing field matches neither `=` nor `!=`.
                found.is_some() && same == *equal
            }
        }
    }
}

struct Parser<'p> {
    rest: &'p str,
}

impl Parser<'_> {
    fn eat(&mut self, token: &str) -> bool {
        let trimmed = self.rest.trim_start();
        match trimmed.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn or(&mut self) -> Result<FilterPattern, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = FilterPattern::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<FilterPattern, String> {
        let mut left = self.term()?;
        while self.eat("&&") {
            left = FilterPattern::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<FilterPattern, String> {
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(format!("no `)` before `{}`", self.rest));
            }
            return Ok(inner);
        }
        if !self.eat("$.") {
            return Err(format!("a selector `$.` expected at `{}`", self.rest));
        }
        let end = self
            .rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(self.rest.len());
        let path = self.rest[..end].split('.').map(str::to_owned).collect();
        self.rest = &self.rest[end..];
        let equal = if self.eat("!=") {
            false
        } else if self.eat("=") {
            true
        } else {
            return Err(format!("`=` or `!=` expected at `{}`", self.rest));
        };
        let value = self.literal()?;
        Ok(FilterPattern::Compare { path, equal, value })
    }

    fn literal(&mut self) -> Result<Literal, String> {
        let trimmed = self.rest.trim_start();
        if let Some(quoted) = trimmed.strip_prefix('"') {
            let close = quoted
                .find('"')
                .ok_or_else(|| format!("an unclosed string at `{trimmed}`"))?;
            self.rest = &quoted[close + 1..];
            return Ok(Literal::Text(quoted[..close].to_owned()));
        }
        let end = trimmed
            .find(|c: char| c.is_whitespace() || c == ')')
            .unwrap_or(trimmed.len());
        let number = trimmed[..end]
            .parse()
            .map_err(|_| format!("a string or a number expected at `{trimmed}`"))?;
        self.rest = &trimmed[end..];
        Ok(Literal::Number(number))
    }
}

/// One resource of template.yaml: its logical id, `Type`, and every `key: value` line of its
/// properties, keyed by the key (the first occurrence; values as written, quotes kept).
#[derive(Debug, Clone)]
pub struct TemplateResource {
    pub id: String,
    pub kind: String,
    pub properties: BTreeMap<String, String>,
}

impl TemplateResource {
    /// A property's value with YAML's single or double quotes taken off.
    pub fn get(&self, key: &str) -> Option<&str> {
        let v = self.properties.get(key)?.as_str();
        Some(
            v.strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v),
        )
    }
}

/// The resources of `template` (template.yaml's text).
pub fn template_resources(template: &str) -> Vec<TemplateResource> {
    let mut resources = Vec::new();
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            inside = line == "Resources:";
            continue;
        }
        if !inside || line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 2 {
            let id = line.trim().trim_end_matches(':').to_owned();
            resources.push(TemplateResource {
                id,
                kind: String::new(),
                properties: BTreeMap::new(),
            });
            continue;
        }
        let Some(resource) = resources.last_mut() else {
            continue;
        };
        let entry = line.trim().trim_start_matches("- ");
        if let Some((key, value)) = entry.split_once(": ") {
            let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
            if key == "Type" && indent == 4 {
                resource.kind = value;
            } else {
                resource.properties.entry(key).or_insert(value);
            }
        }
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_top_level_and_nested_fields_as_cloudwatch_does() {
        let top = FilterPattern::parse(r#"{ $.message = "run failed" }"#).expect("parsed");
        assert!(top.matches(r#"{"level":"WARN","message":"run failed","task":"t"}"#));
        assert!(!top.matches(r#"{"fields":{"message":"run failed"}}"#));
        assert!(!top.matches("run failed"));
        let nested = FilterPattern::parse(r#"{ $.fields.message = "run failed" }"#).expect("ok");
        assert!(nested.matches(r#"{"fields":{"message":"run failed"}}"#));
        assert!(!nested.matches(r#"{"message":"run failed"}"#));
    }

    #[test]
    fn and_or_parentheses_prefixes_numbers_and_inequality() {
        let p =
            FilterPattern::parse(r#"{ ($.kind = "step" || $.kind = "cyc*") && $.attempts != 0 }"#)
                .expect("parsed");
        assert!(p.matches(r#"{"kind":"cycle","attempts":3}"#));
        assert!(p.matches(r#"{"kind":"step","attempts":1}"#));
        assert!(!p.matches(r#"{"kind":"step","attempts":0}"#));
        assert!(!p.matches(r#"{"kind":"sweep","attempts":1}"#));
        assert!(
            !p.matches(r#"{"kind":"step"}"#),
            "a missing field matches no comparison"
        );
        assert!(FilterPattern::parse("$.message = 1").is_err());
        assert!(FilterPattern::parse(r#"{ $.message ~ "x" }"#).is_err());
    }

    #[test]
    fn template_resources_keep_their_type_and_first_properties() {
        let text = "Parameters:\n  P:\n    Type: String\nResources:\n  Filter:\n    Type: AWS::Logs::MetricFilter\n    Properties:\n      FilterPattern: '{ $.message = \"x\" }'\n      MetricTransformations:\n        - MetricNamespace: !Sub \"Tidemark/${StageName}\"\n          MetricName: X\nOutputs:\n  O:\n    Value: 1\n";
        let resources = template_resources(text);
        assert_eq!(resources.len(), 1, "{resources:?}");
        let filter = &resources[0];
        assert_eq!(filter.kind, "AWS::Logs::MetricFilter");
        assert_eq!(filter.get("FilterPattern"), Some("{ $.message = \"x\" }"));
        assert_eq!(filter.get("MetricName"), Some("X"));
        assert_eq!(
            filter.get("MetricNamespace"),
            Some("!Sub \"Tidemark/${StageName}\"")
        );
    }
}

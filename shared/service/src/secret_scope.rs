//! The secrets a task may name: on AWS the deployer's `AllowedSecretArns` and `AllowedSecretTag`,
//! the same scope the functions' IAM policy grants `secretsmanager:GetSecretValue` on, checked
//! with the same meaning before any secret is read, so a caller of the API cannot have the
//! service read another application's secret (and send its password to a host of theirs).
//!
//! - An ARN pattern matches as IAM matches a policy's `Resource`: case-sensitive, `*` any run of
//!   characters and `?` any one, within a colon-separated field of the ARN — a `*` that ends a
//!   field (or the pattern) may also run past colons.
//! - The tag (`key=value`) matches a secret that carries it, as `secretsmanager:ResourceTag/<key>`
//!   with `StringEquals` does: the key in any case, the value exactly. The tags are read with
//!   DescribeSecret, which does not read the value.
//! - The secrets the service makes for a task's inline password (its own prefix) are always in
//!   scope, for the task they were made for (a caller cannot name one: see
//!   [`crate::endpoints`]).
//!
//! The local host has no scope unless one is given ([`SecretScope::any`]).

/// Which secrets a task may name.
#[derive(Debug, Clone, Default)]
pub struct SecretScope {
    /// `None`: any secret.
    rules: Option<Rules>,
}

#[derive(Debug, Clone)]
struct Rules {
    arns: Vec<String>,
    tag: Option<(String, String)>,
}

impl SecretScope {
    /// Any secret (no scope).
    pub fn any() -> SecretScope {
        SecretScope { rules: None }
    }

    /// A scope of comma-separated ARN patterns and/or one `key=value` tag; both empty leave only
    /// the service's own secrets. The error says which part is wrong.
    pub fn parse(arns: &str, tag: &str) -> Result<SecretScope, ScopeError> {
        let arns: Vec<String> = arns
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = arns.iter().find(|a| {
            !(a.starts_with("arn:") || a.as_str() == "*") || a.contains(char::is_whitespace)
        }) {
            return Err(ScopeError::Arns(format!(
                "`{bad}` is not an ARN pattern (arn:aws:secretsmanager:<region>:<account>:secret:<name>-??????, with * and ? as in IAM)"
            )));
        }
        // Key and value as given, untrimmed: IAM's condition takes them so.
        let tag = tag.trim();
        let tag = if tag.is_empty() {
            None
        } else {
            match tag.split_once('=') {
                Some((key, value)) if !key.is_empty() => Some((key.to_owned(), value.to_owned())),
                _ => {
                    return Err(ScopeError::Tag(format!(
                        "`{tag}` is not a tag: give key=value (e.g. tidemark-access=prod)"
                    )));
                }
            }
        };
        Ok(SecretScope {
            rules: Some(Rules { arns, tag }),
        })
    }

    /// Whether a scope is in force.
    pub fn is_restricted(&self) -> bool {
        self.rules.is_some()
    }

    /// What the scope allows, for messages.
    pub fn describe(&self) -> String {
        let Some(rules) = &self.rules else {
            return "any secret".into();
        };
        let mut parts =
            vec!["the secrets Tidemark made for the task's inline passwords".to_owned()];
        if !rules.arns.is_empty() {
            parts.push(format!("AllowedSecretArns {}", rules.arns.join(",")));
        }
        if let Some((key, value)) = &rules.tag {
            parts.push(format!("secrets tagged {key}={value} (AllowedSecretTag)"));
        }
        parts.join(", ")
    }

    /// Whether `arn` is in scope by its ARN alone: no scope, or a pattern matches it.
    pub fn admits_arn(&self, arn: &str) -> bool {
        match &self.rules {
            None => true,
            Some(rules) => rules.arns.iter().any(|p| arn_matches(p, arn)),
        }
    }

    /// The tag a secret outside the ARN patterns must carry, if the scope has one.
    pub fn tag(&self) -> Option<(&str, &str)> {
        self.rules
            .as_ref()
            .and_then(|r| r.tag.as_ref())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether `tags` (a secret's) carry the scope's tag.
    pub fn admits_tags(&self, tags: &[(String, String)]) -> bool {
        self.tag().is_some_and(|(key, value)| {
            tags.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && v == value)
        })
    }
}

/// Which part of a scope is malformed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeError {
    Arns(String),
    Tag(String),
}

/// IAM's matching of a `Resource` pattern against an ARN (see the module docs).
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    let (p, a): (Vec<char>, Vec<char>) = (pattern.chars().collect(), arn.chars().collect());
    // matches[i][j]: pattern[i..] matches arn[j..].
    let mut matches = vec![vec![false; a.len() + 1]; p.len() + 1];
    matches[p.len()][a.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=a.len()).rev() {
            matches[i][j] = match p[i] {
                '*' => {
                    // A `*` ending a field (or the pattern) may run past colons; inside a field
                    // it stops at one.
                    let crosses = p.get(i + 1).is_none_or(|next| *next == ':');
                    matches[i + 1][j]
                        || (j < a.len() && (crosses || a[j] != ':') && matches[i][j + 1])
                }
                '?' => j < a.len() && a[j] != ':' && matches[i + 1][j + 1],
                c => j < a.len() && a[j] == c && matches[i + 1][j + 1],
            };
        }
    }
    matches[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";

    #[test]
    fn arn_patterns_match_as_iam_matches_resources() {
        for (pattern, matched) in [
            (ARN, true),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-??????",
                true,
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/*",
                true,
            ),
            ("arn:aws:secretsmanager:*:123456789012:secret:app/*", true),
            ("arn:aws:secretsmanager:us-east-1:123456789012:*", true),
            ("arn:aws:secretsmanager:*", true),
            ("*", true),
            // Case-sensitive, whole ARN, `?` exactly one character.
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:APP/*",
                false,
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db",
                false,
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-?????",
                false,
            ),
            (
                "arn:aws:secretsmanager:us-east-1:210987654321:secret:app/*",
                false,
            ),
            (
                "arn:aws:secretsmanager:us-west-2:123456789012:secret:*",
                false,
            ),
            // A `*` inside a field does not run past its colon.
            ("arn:aws:secretsmanager:us-east-*2:secret:app/*", false),
            ("arn:aws:secretsmanager:us-east-*:secret:app/*", true),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/*",
                false,
            ),
        ] {
            assert_eq!(arn_matches(pattern, ARN), matched, "{pattern}");
        }
    }

    #[test]
    fn a_scope_admits_by_arn_or_by_tag_and_says_what_is_wrong() {
        assert!(SecretScope::any().admits_arn(ARN));
        let scope = SecretScope::parse(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/*, arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-*",
            "tidemark-access=prod",
        )
        .expect("a scope");
        assert!(scope.admits_arn(ARN));
        assert!(
            !scope.admits_arn(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:payroll/db-AbCdEf"
            )
        );
        let tags = |k: &str, v: &str| {
            vec![
                ("env".to_owned(), "x".to_owned()),
                (k.to_owned(), v.to_owned()),
            ]
        };
        assert!(scope.admits_tags(&tags("Tidemark-Access", "prod")));
        assert!(!scope.admits_tags(&tags("tidemark-access", "Prod")));
        assert!(!scope.admits_tags(&[]));
        let own_only = SecretScope::parse("", "").expect("own secrets only");
        assert!(own_only.is_restricted() && !own_only.admits_arn(ARN));
        assert!(!own_only.admits_tags(&tags("tidemark-access", "prod")));
        assert!(matches!(
            SecretScope::parse("app/*", ""),
            Err(ScopeError::Arns(_))
        ));
        assert!(matches!(
            SecretScope::parse("", "=prod"),
            Err(ScopeError::Tag(_))
        ));
        assert!(matches!(
            SecretScope::parse("", "prod"),
            Err(ScopeError::Tag(_))
        ));
    }
}

//! Validation of a parsed [`TaskSpec`]: every rule, every problem collected with its path.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};

use jiff::tz::TimeZone;

use super::objects::check_objects;
use super::{
    Cycle, EndpointSpec, MAX_INCREMENTAL_SECONDS, MAX_SCHEDULE_DAYS, Policy, ScheduleSpec,
    TaskSpec, TimeOfDay, TlsMode,
};
use crate::error::{FieldError, SpecErrors};

/// Longest task name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest task id, in characters.
pub const MAX_TASK_ID_CHARS: usize = 128;
/// Longest account name, in characters (MariaDB's limit; MySQL's is 32).
pub const MAX_USER_CHARS: usize = 80;

/// Collects errors as validation walks the spec.
#[derive(Default)]
pub(super) struct Errors(pub(super) Vec<FieldError>);

impl Errors {
    pub(super) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
}

impl TaskSpec {
    /// Checks every rule and returns all problems found, each at its field path.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut e = Errors::default();
        if let Some(id) = &self.id
            && let Err(m) = check_task_id(id)
        {
            e.add("id", m);
        }
        check_name(&self.name, &mut e);
        check_endpoint("source", &self.source, &mut e);
        check_endpoint("destination", &self.destination, &mut e);
        check_migration_types(self, &mut e);
        check_policy(&self.policy, &mut e);
        check_schedule(&self.schedule, &mut e);
        check_objects(self, &mut e);
        check_channel(self, &mut e);
        if e.0.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(e.0))
        }
    }
}

fn check_name(name: &str, e: &mut Errors) {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        e.add(
            "name",
            "`name` must not be empty; give the task a name, e.g. \"shop-nightly\"",
        );
    } else if chars > MAX_NAME_CHARS {
        e.add(
            "name",
            format!("`name` is {chars} characters long; use at most {MAX_NAME_CHARS}"),
        );
    } else if name.chars().any(char::is_control) {
        e.add(
            "name",
            "`name` contains a control character (e.g. a newline); remove it",
        );
    }
}

/// A task id is a key in the state (`TASK#<id>`, `RUN#<id>#<time>`), a file name and a word on
/// a command line: 1 to [`MAX_TASK_ID_CHARS`] lowercase ASCII letters, digits, `-` and `_`,
/// starting with a letter or a digit. `tsk-` starts the ids the service assigns, so a task run
/// from a file never shares a data directory's records with one `tidemark serve` created.
pub fn check_task_id(id: &str) -> Result<(), String> {
    let example = "e.g. \"shop-nightly\"";
    let chars = id.chars().count();
    if id.is_empty() {
        Err(format!(
            "`id` must not be empty; leave it out, or give a stable id, {example}"
        ))
    } else if chars > MAX_TASK_ID_CHARS {
        Err(format!(
            "`id` is {chars} characters long; use at most {MAX_TASK_ID_CHARS}"
        ))
    } else if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        Err(format!(
            "`id` may hold only lowercase letters a-z, digits 0-9, '-' and '_' ({example}); \
             {bad:?} is not allowed"
        ))
    } else if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Err(format!(
            "`id` must start with a letter or a digit ({example})"
        ))
    } else if id.starts_with("tsk-") {
        Err(
            "`id` must not start with \"tsk-\": ids of that form are the ones the service \
             assigns"
                .into(),
        )
    } else {
        Ok(())
    }
}

fn check_endpoint(at: &str, ep: &EndpointSpec, e: &mut Errors) {
    if let Err(m) = check_host(&ep.host) {
        e.add(format!("{at}.host"), m);
    }
    if ep.port == 0 {
        e.add(
            format!("{at}.port"),
            "`port` must be between 1 and 65535; MySQL listens on 3306 by default",
        );
    }
    match &ep.user {
        // The secret's `username` is used (a secret without one is refused when it is read).
        None if ep.password_secret.is_some() => {}
        None => e.add(
            format!("{at}.user"),
            "`user` is required with `password` or `password_env`; give the account name \
             (with `password_secret` it may be left out: the secret's `username` is used)",
        ),
        Some(user) if user.is_empty() => e.add(
            format!("{at}.user"),
            "`user` must not be empty; give the account name",
        ),
        Some(user) if user.chars().count() > MAX_USER_CHARS => e.add(
            format!("{at}.user"),
            format!(
                "`user` is {} characters long; account names have at most {MAX_USER_CHARS}",
                user.chars().count()
            ),
        ),
        Some(_) => {}
    }
    check_password(at, ep, e);
    check_tls(at, ep, e);
    if !(1..=300).contains(&ep.connect_timeout_seconds) {
        e.add(
            format!("{at}.connect_timeout_seconds"),
            format!(
                "`connect_timeout_seconds` must be between 1 and 300; got {} (the default is 10)",
                ep.connect_timeout_seconds
            ),
        );
    }
}

fn check_password(at: &str, ep: &EndpointSpec, e: &mut Errors) {
    let given: Vec<&str> = [
        ep.password.as_ref().map(|_| "password"),
        ep.password_env.as_ref().map(|_| "password_env"),
        ep.password_secret.as_ref().map(|_| "password_secret"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.len() {
        0 => e.add(
            format!("{at}.password"),
            "no password source; set exactly one of `password`, `password_env` \
             (an environment variable name) or `password_secret` (a Secrets Manager ARN)",
        ),
        1 => {}
        _ => e.add(
            format!("{at}.password"),
            format!(
                "several password sources are set ({}); keep exactly one of `password`, \
                 `password_env` or `password_secret`",
                given.join(", ")
            ),
        ),
    }
    // Values are not quoted below: a password pasted into the wrong field must not leak.
    if let Some(var) = &ep.password_env
        && !is_env_var_name(var)
    {
        e.add(
            format!("{at}.password_env"),
            "`password_env` must be the NAME of an environment variable (letters, digits and \
             '_', not starting with a digit, e.g. \"SOURCE_DB_PASSWORD\"), not the password; \
             the value is not shown because it may be a secret",
        );
    }
    if let Some(arn) = &ep.password_secret
        && !(arn.starts_with("arn:")
            && arn.contains(":secretsmanager:")
            && !arn.chars().any(char::is_whitespace))
    {
        e.add(
            format!("{at}.password_secret"),
            "`password_secret` must be a Secrets Manager secret ARN, e.g. \
             \"arn:aws:secretsmanager:us-east-1:123456789012:secret:tidemark/src\"; \
             the value is not shown because it may be a secret",
        );
    }
}

fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_tls(at: &str, ep: &EndpointSpec, e: &mut Errors) {
    let tls = &ep.tls;
    match (&tls.ca_pem, tls.mode) {
        (Some(_), TlsMode::Disabled) => e.add(
            format!("{at}.tls.ca_pem"),
            "`ca_pem` is set but `tls.mode` is \"disabled\"; set the mode to \"verify_ca\" or \
             \"verify_identity\", or remove `ca_pem`",
        ),
        (Some(pem), _) if !pem.contains("-----BEGIN CERTIFICATE-----") => e.add(
            format!("{at}.tls.ca_pem"),
            "`ca_pem` must hold a PEM certificate (text starting with \
             \"-----BEGIN CERTIFICATE-----\"); paste the CA certificate file's content",
        ),
        (None, TlsMode::VerifyCa) => e.add(
            format!("{at}.tls.ca_pem"),
            "`tls.mode` \"verify_ca\" needs `ca_pem`, the CA certificate (PEM) that signed the \
             server's certificate; add it, or use \"verify_identity\" to trust the system roots",
        ),
        _ => {}
    }
}

/// Accepts a host name or an IP literal (IPv6 with or without brackets).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(
            "`host` must not be empty; give the server's host name or IP address".to_string(),
        );
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!(
            "`host` must not contain whitespace; got {host:?}, give a host name or IP address"
        ));
    }
    if host.contains("://") || host.contains('/') || host.contains('@') {
        return Err(format!(
            "`host` must be a host name or IP address, not a URL or DSN; got {host:?}"
        ));
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(_)) => Ok(()),
            _ => Err(format!(
                "`host` in brackets must be an IPv6 address such as \"[::1]\"; got {host:?}"
            )),
        };
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        let looks_like_port = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()));
        return Err(if looks_like_port {
            format!("`host` must not include a port; got {host:?}, put the port in `port`")
        } else {
            format!("`host` is not a valid IPv6 address; got {host:?}")
        });
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!(
            "`host` is not a valid host name; got {host:?} (use letters, digits, '-' and '.', \
             labels of 1 to 63 characters) or give an IP address"
        ));
    }
    if labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!(
            "`host` looks like an IPv4 address but is not a valid one; got {host:?}"
        ));
    }
    Ok(())
}

/// The host as compared for "same server": brackets, case and a trailing dot ignored.
pub(super) fn host_key(host: &str) -> String {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match h.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase(),
    }
}

fn check_migration_types(spec: &TaskSpec, e: &mut Errors) {
    if spec.migration_types.is_empty() {
        e.add(
            "migration_types",
            "`migration_types` must list at least one of \"schema\" and \"data\" \
             (omit it for both)",
        );
    }
    let mut seen = HashSet::new();
    for (i, t) in spec.migration_types.iter().enumerate() {
        if !seen.insert(*t) {
            e.add(
                format!("migration_types[{i}]"),
                format!(
                    "{:?} is listed twice; list each migration type once",
                    t.as_str()
                ),
            );
        }
    }
}

fn check_policy(policy: &Policy, e: &mut Errors) {
    match policy {
        Policy::MultiReplica(p) => {
            if p.keep_replicas == Some(0) {
                e.add(
                    "policy.keep_replicas",
                    "`keep_replicas` must be at least 1; omit it to keep every replica",
                );
            }
        }
        Policy::Resync(_) => {}
        Policy::Incremental(p) => {
            for (key, value) in [
                ("lag_seconds", p.lag_seconds),
                ("lookback_seconds", p.lookback_seconds),
            ] {
                if value > MAX_INCREMENTAL_SECONDS {
                    e.add(
                        format!("policy.{key}"),
                        format!(
                            "`{key}` must be at most {MAX_INCREMENTAL_SECONDS} (7 days); got {value}"
                        ),
                    );
                }
            }
        }
    }
}

fn check_schedule(s: &ScheduleSpec, e: &mut Errors) {
    if let Err(m) = TimeOfDay::parse(&s.at) {
        e.add("schedule.at", m);
    }
    if let Err(m) = time_zone(&s.time_zone) {
        e.add("schedule.time_zone", m);
    }
    if s.end < s.start {
        e.add(
            "schedule.end",
            format!(
                "`end` ({}) is before `start` ({}); set `end` on or after `start`",
                s.end, s.start
            ),
        );
    } else {
        let days = s.start.duration_until(s.end).as_hours() / 24;
        if days > MAX_SCHEDULE_DAYS {
            let latest = s
                .start
                .checked_add(jiff::Span::new().days(MAX_SCHEDULE_DAYS))
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            e.add(
                "schedule.end",
                format!(
                    "the schedule spans {days} days from `start` to `end`; the maximum effective \
                     duration is {MAX_SCHEDULE_DAYS} days, set `end` at most \
                     {MAX_SCHEDULE_DAYS} days after `start`{latest}"
                ),
            );
        }
    }
    match s.cycle {
        Cycle::Week if s.days.is_empty() => e.add(
            "schedule.days",
            "a \"week\" cycle needs `days`, e.g. [\"mon\", \"thu\"]; add them, or use \
             cycle \"day\" to run every day",
        ),
        Cycle::Week => {
            let mut seen = HashSet::new();
            for (i, d) in s.days.iter().enumerate() {
                if !seen.insert(*d) {
                    e.add(
                        format!("schedule.days[{i}]"),
                        format!("{:?} is listed twice; list each day once", d.as_str()),
                    );
                }
            }
        }
        Cycle::Day if !s.days.is_empty() => e.add(
            "schedule.days",
            "a \"day\" cycle runs every day and takes no `days`; remove `days`, or use \
             cycle \"week\" to run on those days only",
        ),
        Cycle::Day => {}
    }
}

/// Looks a zone up in the bundled database; the name must be spelled as IANA spells it.
pub(super) fn time_zone(name: &str) -> Result<TimeZone, String> {
    let unknown = || {
        format!(
            "`time_zone` must be an IANA time zone name such as \"Asia/Shanghai\" or \"UTC\"; \
             {name:?} is not one"
        )
    };
    let tz = TimeZone::get(name).map_err(|_| unknown())?;
    match tz.iana_name() {
        Some(canonical) if canonical == name => Ok(tz),
        Some(canonical) => Err(format!(
            "`time_zone` must be spelled as in the IANA database; use {canonical:?} instead of \
             {name:?}"
        )),
        None => Err(unknown()),
    }
}

fn check_channel(spec: &TaskSpec, e: &mut Errors) {
    let c = &spec.channel;
    if !(1..=64).contains(&c.workers) {
        e.add(
            "channel.workers",
            format!(
                "`workers` must be between 1 and 64; got {} (the default is 4)",
                c.workers
            ),
        );
    }
    if !(1..=1024).contains(&c.chunk_mb) {
        e.add(
            "channel.chunk_mb",
            format!(
                "`chunk_mb` must be between 1 and 1024; got {} (the default is 64)",
                c.chunk_mb
            ),
        );
    }
    if let Some(n) = c.table_workers
        && !(1..=64).contains(&n)
    {
        e.add(
            "channel.table_workers",
            format!(
                "`table_workers` must be between 1 and 64; got {n} (leave it out to let the \
                 destination's innodb_autoinc_lock_mode decide)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "[2001:db8::1]",
            "db.example.com",
            "db.example.com.",
            "localhost",
            "my_db-1",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("", "must not be empty"),
            ("db host", "whitespace"),
            ("db:3306", "put the port in `port`"),
            ("[db]", "IPv6"),
            ("1.2.3.999", "IPv4"),
            ("mysql://db", "URL"),
            ("-db", "not a valid host name"),
            ("a..b", "not a valid host name"),
            ("2001:db8::zz", "IPv6"),
        ] {
            let err = check_host(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
    }

    #[test]
    fn host_keys_normalise() {
        assert_eq!(host_key("[::1]"), host_key("0:0:0:0:0:0:0:1"));
        assert_eq!(host_key("DB.Example.com."), "db.example.com");
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("SRC_PW"));
        assert!(is_env_var_name("_x1"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("A-B"));
        assert!(!is_env_var_name(""));
    }

    #[test]
    fn time_zones() {
        assert!(time_zone("Asia/Shanghai").is_ok());
        assert!(time_zone("UTC").is_ok());
        let err = time_zone("Mars/Base").unwrap_err();
        assert!(
            err.contains("\"Mars/Base\"") && err.contains("Asia/Shanghai"),
            "{err}"
        );
        let err = time_zone("asia/shanghai").unwrap_err();
        assert!(err.contains("use \"Asia/Shanghai\""), "{err}");
        assert!(time_zone("Etc/Unknown").is_err());
        assert!(time_zone("").is_err());
    }
}

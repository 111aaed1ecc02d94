//! The task spec: what to copy, from where to where, under which policy and schedule.
//!
//! Parse with [`parse_task_spec`]; the types mirror the JSON (snake_case, unknown fields are
//! errors everywhere). Passwords are [`SecretString`]s and are never serialized.

mod objects;
mod parse;
mod validate;

pub use objects::REPLICA_SUFFIX_CHARS;
pub use parse::parse_task_spec;
pub use validate::{MAX_NAME_CHARS, MAX_TASK_ID_CHARS, MAX_USER_CHARS, check_task_id};

use jiff::civil::Date;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A whole task: endpoints, objects, policy, schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The task's stable id for `tidemark run`'s local state (see [`check_task_id`] for its
    /// form); the service assigns its own ids and refuses one given here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human-readable task name.
    pub name: String,
    /// Where data is read from.
    pub source: EndpointSpec,
    /// Where data is written to.
    pub destination: EndpointSpec,
    /// What each cycle migrates; defaults to schema and data.
    #[serde(default = "default_migration_types")]
    pub migration_types: Vec<MigrationType>,
    /// How cycles treat earlier copies; fixed at creation.
    pub policy: Policy,
    /// When cycles run.
    pub schedule: ScheduleSpec,
    /// What a failed cycle does to later ones.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// The selected databases, tables and columns, with their name mapping.
    pub objects: Vec<DatabaseSelection>,
    /// Copy parallelism and chunking.
    #[serde(default)]
    pub channel: Channel,
}

fn default_migration_types() -> Vec<MigrationType> {
    vec![MigrationType::Schema, MigrationType::Data]
}

/// A MySQL-compatible server and how to log in to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Host name or IP literal (IPv6 with or without brackets).
    pub host: String,
    /// TCP port; 3306 by default.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Account name. Optional with `password_secret`, whose secret's `username` wins when it
    /// has one (RDS's format); required with `password` and `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Inline password; never serialized (the service moves it to the secret store).
    #[serde(default, skip_serializing)]
    pub password: Option<SecretString>,
    /// Name of an environment variable holding the password (local host only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// ARN of a Secrets Manager secret holding RDS's `{"username","password"}` (the username
    /// may be left out when `user` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// Transport security.
    #[serde(default)]
    pub tls: TlsSpec,
    /// Seconds to wait for a connection; 10 by default.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u32,
}

fn default_port() -> u16 {
    3306
}

fn default_connect_timeout() -> u32 {
    10
}

impl PartialEq for EndpointSpec {
    fn eq(&self, other: &Self) -> bool {
        let pw = |e: &Self| e.password.as_ref().map(|p| p.expose_secret().to_owned());
        self.host == other.host
            && self.port == other.port
            && self.user == other.user
            && pw(self) == pw(other)
            && self.password_env == other.password_env
            && self.password_secret == other.password_secret
            && self.tls == other.tls
            && self.connect_timeout_seconds == other.connect_timeout_seconds
    }
}

impl Eq for EndpointSpec {}

/// Where an endpoint's password comes from.
#[derive(Debug, Clone, Copy)]
pub enum PasswordSource<'a> {
    /// Given in the spec.
    Inline(&'a SecretString),
    /// Read from this environment variable.
    Env(&'a str),
    /// Read from this Secrets Manager ARN.
    Secret(&'a str),
}

impl EndpointSpec {
    /// The one password source; `None` unless exactly one is set (always `Some` once the spec
    /// has passed validation).
    pub fn password_source(&self) -> Option<PasswordSource<'_>> {
        match (&self.password, &self.password_env, &self.password_secret) {
            (Some(p), None, None) => Some(PasswordSource::Inline(p)),
            (None, Some(v), None) => Some(PasswordSource::Env(v)),
            (None, None, Some(arn)) => Some(PasswordSource::Secret(arn)),
            _ => None,
        }
    }
}

/// TLS settings of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// How much TLS to require and verify.
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM of a private CA to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// TLS mode, as MySQL clients name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disabled,
    /// Encrypted, certificate not checked.
    Required,
    /// Encrypted, certificate signed by `ca_pem`.
    VerifyCa,
    /// Encrypted, certificate checked and host name matched.
    VerifyIdentity,
}

/// What a cycle migrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationType {
    /// Tables, views, triggers, routines.
    Schema,
    /// Rows.
    Data,
}

impl MigrationType {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationType::Schema => "schema",
            MigrationType::Data => "data",
        }
    }
}

/// The scheduling policy, tagged by `mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Policy {
    /// Every cycle writes new databases named `<db>_<yyyymmdd_HH_mm_ss>`.
    MultiReplica(MultiReplicaPolicy),
    /// Every cycle reloads the same destination objects (shadow tables, atomic swap).
    Resync(ResyncPolicy),
    /// Every cycle copies rows changed since the last watermark of a timestamp column.
    Incremental(IncrementalPolicy),
}

impl Policy {
    /// The `mode` string.
    pub fn mode(&self) -> &'static str {
        match self {
            Policy::MultiReplica(_) => "multi_replica",
            Policy::Resync(_) => "resync",
            Policy::Incremental(_) => "incremental",
        }
    }

    /// Whether this is the timestamp-based incremental policy.
    pub fn is_incremental(&self) -> bool {
        matches!(self, Policy::Incremental(_))
    }
}

/// Settings of the multi-replica policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiReplicaPolicy {
    /// Keep only the newest N replicas the task made; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_replicas: Option<u32>,
}

/// The resynchronization policy (no settings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncPolicy {}

/// Settings of the timestamp-based incremental policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalPolicy {
    /// Rows newer than `NOW() - lag_seconds` wait for the next cycle.
    #[serde(default)]
    pub lag_seconds: u32,
    /// Each cycle re-reads (upserts) the rows stamped this many seconds before the last
    /// watermark, also when nothing newer arrived: a row committed late whose timestamp is
    /// within this of the watermark still arrives.
    #[serde(default)]
    pub lookback_seconds: u32,
}

/// Longest allowed `lag_seconds` / `lookback_seconds`: one week.
pub const MAX_INCREMENTAL_SECONDS: u32 = 86_400 * 7;

/// When cycles run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Daily or weekly.
    pub cycle: Cycle,
    /// Days of the week for a weekly cycle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// Time of day, `HH:MM` (24-hour) in `time_zone`; see [`ScheduleSpec::at_time`].
    pub at: String,
    /// IANA time zone name; see [`ScheduleSpec::tz`].
    pub time_zone: String,
    /// First day cycles may run (in `time_zone`).
    #[serde(deserialize_with = "parse::date")]
    pub start: Date,
    /// Last day cycles may run (in `time_zone`); at most 365 days after `start`.
    #[serde(deserialize_with = "parse::date")]
    pub end: Date,
}

/// Longest allowed `end - start`, in days (the DTS limit).
pub const MAX_SCHEDULE_DAYS: i64 = 365;

impl ScheduleSpec {
    /// `at` as a time of day.
    pub fn at_time(&self) -> Result<TimeOfDay, FieldError> {
        TimeOfDay::parse(&self.at).map_err(|m| FieldError::new("schedule.at", m))
    }

    /// `time_zone` as a jiff time zone (from the bundled database).
    pub fn tz(&self) -> Result<jiff::tz::TimeZone, FieldError> {
        validate::time_zone(&self.time_zone).map_err(|m| FieldError::new("schedule.time_zone", m))
    }
}

/// A time of day with minute precision, parsed from strict `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
}

impl TimeOfDay {
    /// Parses exactly `HH:MM` (two digits each, 00:00..=23:59); the error says how to fix it.
    pub fn parse(s: &str) -> Result<TimeOfDay, String> {
        let bad = || {
            format!(
                "`at` must be HH:MM in 24-hour time (00:00 to 23:59), e.g. \"02:30\"; got {s:?}"
            )
        };
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit)
        {
            return Err(bad());
        }
        let hour = (b[0] - b'0') * 10 + (b[1] - b'0');
        let minute = (b[3] - b'0') * 10 + (b[4] - b'0');
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }

    /// As a jiff civil time (seconds zero).
    pub fn to_civil(self) -> jiff::civil::Time {
        jiff::civil::time(self.hour as i8, self.minute as i8, 0, 0)
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// Schedule cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cycle {
    /// Every day at `at`.
    Day,
    /// On each of `days` at `at`.
    Week,
}

/// A day of the week, as `mon`..`sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    #[allow(missing_docs)]
    Mon,
    #[allow(missing_docs)]
    Tue,
    #[allow(missing_docs)]
    Wed,
    #[allow(missing_docs)]
    Thu,
    #[allow(missing_docs)]
    Fri,
    #[allow(missing_docs)]
    Sat,
    #[allow(missing_docs)]
    Sun,
}

impl Weekday {
    /// The JSON name (`mon`..`sun`).
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// The jiff weekday.
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as J;
        match self {
            Weekday::Mon => J::Monday,
            Weekday::Tue => J::Tuesday,
            Weekday::Wed => J::Wednesday,
            Weekday::Thu => J::Thursday,
            Weekday::Fri => J::Friday,
            Weekday::Sat => J::Saturday,
            Weekday::Sun => J::Sunday,
        }
    }
}

/// What a failed cycle does to the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// No later cycles after a failed one (the schedule is removed).
    #[default]
    Stop,
    /// Record the failure and keep the schedule.
    Continue,
}

/// One selected database: all of it, or the listed tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSelection {
    /// Source database name.
    pub database: String,
    /// Destination name, if different.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// Selected tables; absent means the whole database (tables, views, triggers, routines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableSelection>>,
}

impl DatabaseSelection {
    /// The destination name: `rename`, or the source name.
    pub fn target_name(&self) -> &str {
        self.rename.as_deref().unwrap_or(&self.database)
    }
}

/// One selected table: all its columns, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSelection {
    /// Source table name.
    pub name: String,
    /// Destination name, if different.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// Source column whose value tracks changes (incremental policy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_column: Option<String>,
    /// Selected columns; absent means all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnSelection>>,
}

impl TableSelection {
    /// The destination name: `rename`, or the source name.
    pub fn target_name(&self) -> &str {
        self.rename.as_deref().unwrap_or(&self.name)
    }
}

/// One selected column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSelection {
    /// Source column name.
    pub name: String,
    /// Destination name, if different.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
}

impl ColumnSelection {
    /// The destination name: `rename`, or the source name.
    pub fn target_name(&self) -> &str {
        self.rename.as_deref().unwrap_or(&self.name)
    }
}

/// Copy parallelism and chunk size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Chunks copied at once per run (1..=64).
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// Target chunk size in MB (1..=1024).
    #[serde(default = "default_chunk_mb")]
    pub chunk_mb: u32,
    /// Verify every chunk (row count and checksum).
    #[serde(default = "default_verify")]
    pub verify: bool,
    /// Chunks of any one table copied at once (1..=64). Unset: no limit but `workers`, except
    /// for tables with an AUTO_INCREMENT column on a destination whose
    /// `innodb_autoinc_lock_mode` is below 2 (MariaDB's and MySQL 5.7's default), which are
    /// copied one chunk at a time while the other workers take other tables' chunks: parallel
    /// loads into one such table contend for its AUTO-INC lock (see BENCHMARKS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_workers: Option<u32>,
}

fn default_workers() -> u32 {
    4
}

fn default_chunk_mb() -> u32 {
    64
}

fn default_verify() -> bool {
    true
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            workers: default_workers(),
            chunk_mb: default_chunk_mb(),
            verify: default_verify(),
            table_workers: None,
        }
    }
}

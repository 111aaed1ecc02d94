//! Schedule math: when a task's cycles fire, exactly as EventBridge Scheduler fires them.
//!
//! A task runs every day, or on chosen weekdays, at HH:MM in an IANA time zone, inside an
//! effective window from `start` (00:00 local) to the end of `end` (the next day's 00:00 local).
//! The same function serves the "View Scheduled Time" preview, the local scheduler and the
//! EventBridge schedule's expression, so the three always agree.
//!
//! Daylight-saving changes follow EventBridge Scheduler's documented behaviour for cron schedules
//! with a time zone: when clocks spring forward, a time that does not exist that day is skipped
//! (no run); when clocks fall back, a time that happens twice runs once — at its first occurrence
//! (the earlier instant, still on daylight time).

use jiff::civil::{Date, DateTime, Weekday as CivilWeekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan, ZonedDateTime};

use crate::error::FieldError;
use crate::spec::{Cycle, ScheduleSpec, TimeOfDay};

/// A validated schedule, ready for arithmetic.
#[derive(Debug, Clone)]
pub struct Schedule {
    cycle: Cycle,
    /// For weekly cycles: the weekdays, Monday first, without duplicates.
    days: Vec<CivilWeekday>,
    at: TimeOfDay,
    tz: TimeZone,
    start: Date,
    end: Date,
}

impl Schedule {
    /// Builds the schedule of a spec (errors name the `schedule.*` field).
    pub fn from_spec(spec: &ScheduleSpec) -> Result<Schedule, FieldError> {
        let at = spec.at_time()?;
        let tz = spec.tz()?;
        let mut days: Vec<CivilWeekday> = spec.days.iter().map(|d| d.to_jiff()).collect();
        days.sort_by_key(|d| d.to_monday_one_offset());
        days.dedup();
        Ok(Schedule {
            cycle: spec.cycle,
            days,
            at,
            tz,
            start: spec.start,
            end: spec.end,
        })
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first instant of the window: `start` at 00:00 in the task's zone (the earliest valid
    /// instant of that day, should midnight itself fall in a gap).
    pub fn window_start(&self) -> Timestamp {
        start_of_day(&self.tz, self.start)
    }

    /// The first instant after the window: the day after `end`, 00:00 in the task's zone.
    pub fn window_end(&self) -> Timestamp {
        match self.end.checked_add(1.day()) {
            Ok(next) => start_of_day(&self.tz, next),
            Err(_) => Timestamp::MAX,
        }
    }

    fn runs_on(&self, date: Date) -> bool {
        match self.cycle {
            Cycle::Day => true,
            Cycle::Week => self.days.contains(&date.weekday()),
        }
    }

    /// The scheduled instant on `date`, or `None` when the cycle does not run that day or the
    /// time does not exist that day (spring forward).
    pub fn occurrence_on(&self, date: Date) -> Option<ZonedDateTime> {
        if date < self.start || date > self.end || !self.runs_on(date) {
            return None;
        }
        let local = DateTime::from_parts(date, self.at.to_civil());
        let ambiguous = self.tz.to_ambiguous_zoned_datetime(local);
        match ambiguous.offset() {
            AmbiguousOffset::Gap { .. } => None,
            // Runs once, at the first of the two instants.
            AmbiguousOffset::Fold { .. } | AmbiguousOffset::Unambiguous { .. } => {
                ambiguous.earlier().ok()
            }
        }
    }

    /// The first scheduled instant strictly after `after`, if the window has one.
    pub fn next_after(&self, after: Timestamp) -> Option<ZonedDateTime> {
        let local_day = after.to_zoned_datetime(self.tz.clone()).date();
        let mut date = local_day.max(self.start);
        while date <= self.end {
            if let Some(at) = self.occurrence_on(date)
                && at.timestamp() > after
            {
                return Some(at);
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }

    /// The next `count` scheduled instants strictly after `after` ("View Scheduled Time").
    pub fn upcoming(&self, after: Timestamp, count: usize) -> Vec<ZonedDateTime> {
        let mut out = Vec::with_capacity(count.min(400));
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(cursor) {
                Some(at) => {
                    cursor = at.timestamp();
                    out.push(at);
                }
                None => break,
            }
        }
        out
    }

    /// Every scheduled instant in `(after, until]`, oldest first: the cycles a scheduler that
    /// was down for that span has missed.
    pub fn between(&self, after: Timestamp, until: Timestamp) -> Vec<ZonedDateTime> {
        let mut out = Vec::new();
        let mut cursor = after;
        while let Some(at) = self.next_after(cursor) {
            if at.timestamp() > until {
                break;
            }
            cursor = at.timestamp();
            out.push(at);
        }
        out
    }

    /// The EventBridge Scheduler expression: `cron(M H * * ? *)` for a daily cycle,
    /// `cron(M H ? * MON,THU *)` for a weekly one. Evaluated in [`Schedule::time_zone`], between
    /// [`Schedule::window_start`] and [`Schedule::window_end`].
    pub fn cron_expression(&self) -> String {
        let (minute, hour) = (self.at.minute, self.at.hour);
        match self.cycle {
            Cycle::Day => format!("cron({minute} {hour} * * ? *)"),
            Cycle::Week => {
                let days: Vec<&str> = self.days.iter().map(|d| cron_day(*d)).collect();
                format!("cron({minute} {hour} ? * {} *)", days.join(","))
            }
        }
    }

    /// The IANA name of the zone, for `ScheduleExpressionTimezone`.
    pub fn time_zone_name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }
}

fn cron_day(day: CivilWeekday) -> &'static str {
    match day {
        CivilWeekday::Monday => "MON",
        CivilWeekday::Tuesday => "TUE",
        CivilWeekday::Wednesday => "WED",
        CivilWeekday::Thursday => "THU",
        CivilWeekday::Friday => "FRI",
        CivilWeekday::Saturday => "SAT",
        CivilWeekday::Sunday => "SUN",
    }
}

fn start_of_day(tz: &TimeZone, date: Date) -> Timestamp {
    // `compatible` moves a midnight that falls in a gap forward to the first valid instant.
    tz.to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .compatible()
        .unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(json: &str) -> Schedule {
        let spec: ScheduleSpec = serde_json::from_str(json).expect("schedule json");
        Schedule::from_spec(&spec).expect("valid schedule")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn rfc(z: &ZonedDateTime) -> String {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    #[test]
    fn daily_cycle_in_shanghai() {
        let s = schedule(
            r#"{"cycle":"day","at":"02:30","time_zone":"Asia/Shanghai","start":"2026-12-01","end":"2026-12-03"}"#,
        );
        let times: Vec<String> = s
            .upcoming(ts("2026-11-20T00:00:00Z"), 10)
            .iter()
            .map(rfc)
            .collect();
        assert_eq!(
            times,
            [
                "2026-12-01T02:30:00+08:00",
                "2026-12-02T02:30:00+08:00",
                "2026-12-03T02:30:00+08:00"
            ]
        );
        assert_eq!(s.cron_expression(), "cron(30 2 * * ? *)");
        assert_eq!(s.time_zone_name(), "Asia/Shanghai");
        assert_eq!(s.window_start(), ts("2026-11-30T16:00:00Z"));
        assert_eq!(s.window_end(), ts("2026-12-03T16:00:00Z"));
    }

    #[test]
    fn weekly_cycle_on_chosen_days_only() {
        let s = schedule(
            r#"{"cycle":"week","days":["thu","mon"],"at":"23:05","time_zone":"UTC","start":"2026-11-23","end":"2027-01-31"}"#,
        );
        let times: Vec<String> = s
            .upcoming(ts("2026-11-23T23:05:00Z"), 4)
            .iter()
            .map(rfc)
            .collect();
        // Monday the 23rd at 23:05 is not strictly after the cursor: it is the cursor.
        assert_eq!(
            times,
            [
                "2026-11-26T23:05:00+00:00",
                "2026-11-30T23:05:00+00:00",
                "2026-12-03T23:05:00+00:00",
                "2026-12-07T23:05:00+00:00"
            ]
        );
        assert_eq!(s.cron_expression(), "cron(5 23 ? * MON,THU *)");
    }

    #[test]
    fn spring_forward_skips_a_time_that_does_not_exist() {
        // Europe/Berlin: 2027-03-28 02:00 -> 03:00.
        let s = schedule(
            r#"{"cycle":"day","at":"02:30","time_zone":"Europe/Berlin","start":"2027-03-27","end":"2027-03-29"}"#,
        );
        let times: Vec<String> = s
            .upcoming(ts("2027-03-01T00:00:00Z"), 5)
            .iter()
            .map(rfc)
            .collect();
        assert_eq!(
            times,
            ["2027-03-27T02:30:00+01:00", "2027-03-29T02:30:00+02:00"]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once_at_its_first_occurrence() {
        // America/New_York: 2026-11-01 02:00 EDT -> 01:00 EST, so 01:30 happens twice.
        let s = schedule(
            r#"{"cycle":"day","at":"01:30","time_zone":"America/New_York","start":"2026-10-31","end":"2026-11-02"}"#,
        );
        let times: Vec<String> = s
            .upcoming(ts("2026-10-01T00:00:00Z"), 5)
            .iter()
            .map(rfc)
            .collect();
        assert_eq!(
            times,
            [
                "2026-10-31T01:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00"
            ]
        );
        // Asking from between the two 01:30s gives the next day, not the second 01:30.
        let between = ts("2026-11-01T05:45:00Z"); // 01:45 EDT
        assert_eq!(
            s.next_after(between).map(|z| rfc(&z)).as_deref(),
            Some("2026-11-02T01:30:00-05:00")
        );
    }

    #[test]
    fn the_window_bounds_every_occurrence() {
        let s = schedule(
            r#"{"cycle":"day","at":"00:00","time_zone":"UTC","start":"2026-12-01","end":"2026-12-01"}"#,
        );
        assert_eq!(s.upcoming(ts("2020-01-01T00:00:00Z"), 3).len(), 1);
        assert!(s.next_after(ts("2026-12-01T00:00:00Z")).is_none());
        assert_eq!(
            s.between(ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"))
                .len(),
            1
        );
    }

    #[test]
    fn between_lists_missed_cycles_oldest_first() {
        let s = schedule(
            r#"{"cycle":"day","at":"06:00","time_zone":"UTC","start":"2026-12-01","end":"2026-12-31"}"#,
        );
        let missed: Vec<String> = s
            .between(ts("2026-12-02T07:00:00Z"), ts("2026-12-05T06:00:00Z"))
            .iter()
            .map(rfc)
            .collect();
        assert_eq!(
            missed,
            [
                "2026-12-03T06:00:00+00:00",
                "2026-12-04T06:00:00+00:00",
                "2026-12-05T06:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_whole_year_of_a_weekly_schedule() {
        let s = schedule(
            r#"{"cycle":"week","days":["sun"],"at":"12:00","time_zone":"Australia/Sydney","start":"2026-12-01","end":"2027-11-30"}"#,
        );
        let all = s.upcoming(ts("2026-01-01T00:00:00Z"), 1000);
        assert_eq!(all.len(), 52);
        assert!(
            all.iter()
                .all(|z| z.weekday() == CivilWeekday::Sunday && z.hour() == 12 && z.minute() == 0)
        );
    }
}

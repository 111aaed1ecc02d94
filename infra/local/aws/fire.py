"""When EventBridge Scheduler would invoke the schedules in the emulator, and what it sends.

    fire.py due --endpoint URL --group GROUP --from ISO --to ISO [--attempt N] [--apply]
    fire.py dead-letter --invocation JSON --error-code CODE --error-message TEXT
                        [--retry-attempts N] [--exhausted-retry-condition CONDITION]

Independent of the product's schedule code: the rules are EventBridge Scheduler's documented ones
(User Guide, "Schedule types", "Adding context attributes", "Configuring a dead-letter queue";
API reference, CreateSchedule), the cron arithmetic croniter's and the time zones the pinned
tzdata package's (not the system's: zoneinfo's search path is emptied).

- cron(min hour day-of-month month day-of-week year) is evaluated in ScheduleExpressionTimezone
  (default UTC): day-of-week 1-7 is SUN-SAT, `?` is "any", L/W/# as documented. A local time
  that does not exist (the spring-forward gap) is skipped; one that happens twice (the fall-back
  overlap) is invoked once, at its first occurrence.
- rate(n minutes|hours|days) invokes at StartDate (or, without one, when the schedule was
  created) and every n units of elapsed time after it (a day is 24 hours, DST or not).
- at(yyyy-mm-ddThh:mm:ss) invokes once at that local time; StartDate and EndDate do not apply.
- A recurring schedule invokes on or after StartDate and on or before EndDate (both inclusive);
  a DISABLED schedule does not invoke.
- A schedule completes after its one-time invocation, or when its EndDate passes; with
  ActionAfterCompletion DELETE it is then deleted (`--apply` does that in the emulator).

`due` prints {"invocations": [...], "completions": [...]} for [from, to), in time order. An
invocation carries the schedule and target ARNs, the role, the retry policy (AWS's defaults
when unset: 185 attempts, 86400 s), the dead-letter ARN, the scheduled time, and the Input with
the context attributes substituted: <aws.scheduler.schedule-arn>, <aws.scheduler.scheduled-time>
(2022-03-22T18:59:43Z), <aws.scheduler.execution-id> (16 hex digits, unique per attempt; here
derived from the schedule, time and attempt, so reruns agree) and <aws.scheduler.attempt-number>
(--attempt, default 1). "input_template" is the Input before substitution.

`dead-letter` prints what the scheduler sends to the schedule's dead-letter queue when it gives
up on an invocation (`due`'s JSON for it): {"QueueArn", "MessageBody", "MessageAttributes"} —
the body is the payload it could not deliver, the attributes (String) ERROR_CODE, ERROR_MESSAGE,
EXECUTION_ID, EXHAUSTED_RETRY_CONDITION (MaximumRetryAttempts or MaximumEventAgeInSeconds; left
out for an error that is not retried, such as a missing permission), IS_PAYLOAD_TRUNCATED,
RETRY_ATTEMPTS, SCHEDULED_TIME, SCHEDULE_ARN and TARGET_ARN.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import zoneinfo
from datetime import datetime, timedelta, timezone

from croniter import croniter

zoneinfo.reset_tzpath(())  # the pinned tzdata package, not whatever the machine has
UTC = timezone.utc
DEFAULT_RETRY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


class ScheduleError(Exception):
    pass


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- cron ---------------------------------------------------------------------------------------

def _day_of_week(field):
    """AWS's day-of-week (1-7 = SUN-SAT; nL = last n-day) in croniter's terms (0-6; Ln)."""
    if field in ("?", "*", "L"):
        return "*" if field == "?" else field
    out = []
    for part in field.split(","):
        last = re.fullmatch(r"(\w+)L", part)
        if last:
            out.append("L" + _one_day(last.group(1)))
            continue
        nth = re.fullmatch(r"(\w+)#(\d)", part)
        if nth:
            out.append(f"{_one_day(nth.group(1))}#{nth.group(2)}")
            continue
        base, _, step = part.partition("/")
        base = "-".join(_one_day(d) if d != "*" else d for d in base.split("-"))
        out.append(base + (f"/{step}" if step else ""))
    return ",".join(out)


def _one_day(day):
    if day.upper() in DAYS:
        return day.upper()
    if not day.isdigit() or not 1 <= int(day) <= 7:
        raise ScheduleError(f"day-of-week {day!r} is not 1-7 or SUN-SAT")
    return str(int(day) - 1)


def _years(field):
    """A predicate for AWS's year field (1970-2199: *, lists, ranges, steps)."""
    if field in ("*", "?"):
        return lambda y: True
    allowed = set()
    for part in field.split(","):
        base, _, step = part.partition("/")
        lo, _, hi = base.partition("-")
        lo = 1970 if lo == "*" else int(lo)
        hi = (2199 if base == "*" or step else lo) if not hi else int(hi)
        allowed.update(range(lo, hi + 1, int(step) if step else 1))
    return allowed.__contains__


def parse_cron(body):
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(f"cron({body}) needs six fields: minutes hours day-of-month month day-of-week year")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"cron({body}): exactly one of day-of-month and day-of-week must be '?'")
    return f"{minute} {hour} {'*' if dom == '?' else dom} {month} {_day_of_week(dow)}", _years(year)


def local_to_utc(naive, zone):
    """The instant a local wall-clock time names: None in the gap, the first in the overlap."""
    aware = naive.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return aware.astimezone(UTC) if back == naive else None


def cron_times(body, zone, start, end):
    """Every instant in [start, end) the cron expression names in the zone."""
    expr, year_ok = parse_cron(body)
    cursor = start.astimezone(zone).replace(tzinfo=None) - timedelta(days=1, minutes=1)
    stop = end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    it = croniter(expr, cursor)
    out = []
    while True:
        naive = it.get_next(datetime)
        if naive > stop:
            return out
        if not year_ok(naive.year):
            continue
        t = local_to_utc(naive, zone)
        if t is not None and start <= t < end and t not in out:
            out.append(t)


# -- schedules ----------------------------------------------------------------------------------

def occurrences(schedule, start, end):
    """The instants in [start, end) at which the schedule invokes its target."""
    if schedule.get("State", "ENABLED") != "ENABLED":
        return []
    expression = schedule["ScheduleExpression"].strip()
    zone = zoneinfo.ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
    kind, _, body = expression.partition("(")
    body = body.rstrip(")").strip()
    if kind == "at":
        t = local_to_utc(datetime.fromisoformat(body), zone)
        return [t] if t is not None and start <= t < end else []
    first, last = schedule.get("StartDate"), schedule.get("EndDate")
    lo = max(start, first) if first else start
    hi = min(end, last + timedelta(microseconds=1)) if last else end  # EndDate is inclusive
    if lo >= hi:
        return []
    if kind == "cron":
        return cron_times(body, zone, lo, hi)
    if kind == "rate":
        match = re.fullmatch(r"(\d+)\s+(minute|minutes|hour|hours|day|days)", body)
        if not match or int(match.group(1)) < 1:
            raise ScheduleError(f"rate({body}) is not rate(value minutes|hours|days)")
        unit = match.group(2).rstrip("s")
        step = timedelta(**{unit + "s": int(match.group(1))})
        anchor = first or schedule.get("CreationDate")
        if anchor is None:
            raise ScheduleError(f"{schedule.get('Name')}: a rate schedule needs StartDate or CreationDate")
        k = max(0, -(-(lo - anchor) // step))  # the first k with anchor + k*step >= lo
        out = []
        while anchor + k * step < hi:
            out.append(anchor + k * step)
            k += 1
        return out
    raise ScheduleError(f"{expression!r} is not at(), rate() or cron()")


def completion(schedule):
    """When the schedule completes: its one-time invocation, or its EndDate; None if never."""
    expression = schedule["ScheduleExpression"].strip()
    if expression.startswith("at("):
        zone = zoneinfo.ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
        return local_to_utc(datetime.fromisoformat(expression[3:-1].strip()), zone)
    return schedule.get("EndDate")


def execution_id(schedule_arn, scheduled, attempt):
    return hashlib.sha256(f"{schedule_arn}|{iso(scheduled)}|{attempt}".encode()).hexdigest()[:16]


def render(template, schedule_arn, scheduled, attempt):
    values = {"<aws.scheduler.schedule-arn>": schedule_arn, "<aws.scheduler.scheduled-time>": iso(scheduled),
              "<aws.scheduler.execution-id>": execution_id(schedule_arn, scheduled, attempt),
              "<aws.scheduler.attempt-number>": str(attempt)}
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def invocation(schedule, scheduled, attempt=1):
    target = schedule["Target"]
    template = target.get("Input", "")
    return {
        "schedule_arn": schedule["Arn"], "schedule_name": schedule["Name"],
        "group": schedule.get("GroupName", "default"), "scheduled_time": iso(scheduled),
        "target_arn": target["Arn"], "role_arn": target["RoleArn"],
        "input": render(template, schedule["Arn"], scheduled, attempt), "input_template": template,
        "attempt": attempt, "execution_id": execution_id(schedule["Arn"], scheduled, attempt),
        "retry_policy": {**DEFAULT_RETRY, **(target.get("RetryPolicy") or {})},
        "dead_letter_arn": (target.get("DeadLetterConfig") or {}).get("Arn"),
        "flexible_time_window": schedule.get("FlexibleTimeWindow") or {"Mode": "OFF"},
    }


def due(schedules, start, end, attempt=1):
    invocations, completions = [], []
    for schedule in schedules:
        for t in occurrences(schedule, start, end):
            invocations.append(invocation(schedule, t, attempt))
        done = completion(schedule)
        if done is not None and start <= done < end:
            completions.append({"schedule_arn": schedule["Arn"], "schedule_name": schedule["Name"],
                                "group": schedule.get("GroupName", "default"), "completed_at": iso(done),
                                "action_after_completion": schedule.get("ActionAfterCompletion") or "NONE"})
    invocations.sort(key=lambda i: (i["scheduled_time"], i["schedule_arn"]))
    return {"invocations": invocations, "completions": completions}


def dead_letter(inv, error_code, error_message, retry_attempts=None, exhausted="MaximumRetryAttempts"):
    """The message EventBridge Scheduler sends to the dead-letter queue for a given-up invocation."""
    if retry_attempts is None:
        retry_attempts = inv["retry_policy"]["MaximumRetryAttempts"]
    attempt = retry_attempts + 1
    scheduled = parse_time(inv["scheduled_time"])
    attributes = {
        "ERROR_CODE": error_code, "ERROR_MESSAGE": error_message,
        "EXECUTION_ID": execution_id(inv["schedule_arn"], scheduled, attempt),
        "IS_PAYLOAD_TRUNCATED": "false", "RETRY_ATTEMPTS": str(retry_attempts),
        "SCHEDULED_TIME": inv["scheduled_time"], "SCHEDULE_ARN": inv["schedule_arn"], "TARGET_ARN": inv["target_arn"],
    }
    if exhausted:
        attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
    return {"QueueArn": inv["dead_letter_arn"],
            "MessageBody": render(inv["input_template"], inv["schedule_arn"], scheduled, attempt),
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in sorted(attributes.items())}}


# -- the emulator -------------------------------------------------------------------------------

def client(endpoint):
    import boto3
    key, secret = os.environ.get("TIDEMARK_IAM_ACCESS_KEY_ID"), os.environ.get("TIDEMARK_IAM_SECRET_ACCESS_KEY")
    creds = {"aws_access_key_id": key, "aws_secret_access_key": secret} if key and secret else {}
    return boto3.client("scheduler", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                        **creds)


def schedules_in(scheduler, group):
    out, token = [], None
    while True:
        page = scheduler.list_schedules(GroupName=group, **({"NextToken": token} if token else {}))
        for summary in page.get("Schedules", []):
            out.append(scheduler.get_schedule(Name=summary["Name"], GroupName=group))
        token = page.get("NextToken")
        if not token:
            return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("due", help="the invocations due in [from, to)")
    cmd.add_argument("--endpoint", default=os.environ.get("TIDEMARK_IAM_ENDPOINT_URL"))
    cmd.add_argument("--group", required=True)
    cmd.add_argument("--from", dest="start", required=True, type=parse_time)
    cmd.add_argument("--to", dest="end", required=True, type=parse_time)
    cmd.add_argument("--attempt", type=int, default=1)
    cmd.add_argument("--apply", action="store_true", help="delete completed schedules whose action is DELETE")
    dl = sub.add_parser("dead-letter", help="the dead-letter message for a given-up invocation")
    dl.add_argument("--invocation", required=True, help="one invocation of `due` (JSON, or @file)")
    dl.add_argument("--error-code", required=True)
    dl.add_argument("--error-message", required=True)
    dl.add_argument("--retry-attempts", type=int)
    dl.add_argument("--exhausted-retry-condition", default="MaximumRetryAttempts",
                    help="MaximumRetryAttempts, MaximumEventAgeInSeconds, or '' (not retried)")
    args = parser.parse_args(argv)
    try:
        if args.command == "due":
            scheduler = client(args.endpoint)
            out = due(schedules_in(scheduler, args.group), args.start, args.end, args.attempt)
            if args.apply:
                for done in out["completions"]:
                    if done["action_after_completion"] == "DELETE":
                        scheduler.delete_schedule(Name=done["schedule_name"], GroupName=done["group"])
        else:
            text = args.invocation
            if text.startswith("@"):
                with open(text[1:]) as f:
                    text = f.read()
            out = dead_letter(json.loads(text), args.error_code, args.error_message, args.retry_attempts,
                              args.exhausted_retry_condition or None)
    except ScheduleError as e:
        print(f"fire.py: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

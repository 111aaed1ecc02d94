"""fire.py: EventBridge Scheduler's documented rules, independent of the product's schedule code."""
import json
import os
import subprocess
import sys
import unittest
import uuid
from datetime import datetime, timedelta, timezone

import fire

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = timezone.utc
ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/g/task-1"


def t(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def schedule(expression, zone="UTC", **extra):
    return {"Arn": ARN, "Name": "task-1", "GroupName": "g", "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": zone, "State": "ENABLED",
            "Target": {"Arn": "arn:aws:lambda:us-east-1:123456789012:function:run-cycle",
                       "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                       "Input": '{"task_id":"task-1","scheduled_time":"<aws.scheduler.scheduled-time>"}',
                       "RetryPolicy": {"MaximumRetryAttempts": 2},
                       "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq"}}, **extra}


def times(s, start, end):
    return [i["scheduled_time"] for i in fire.due([s], t(start), t(end))["invocations"]]


class DaylightSaving(unittest.TestCase):
    # Europe/Berlin: 2026-03-29 02:00 CET becomes 03:00 CEST; 2026-10-25 03:00 CEST becomes 02:00 CET.
    def test_a_time_in_the_spring_forward_gap_is_skipped(self):
        self.assertEqual(times(schedule("cron(30 2 * * ? *)", "Europe/Berlin"), "2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z"),
                         ["2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"])

    def test_a_time_in_the_fall_back_overlap_is_invoked_once_at_its_first_occurrence(self):
        self.assertEqual(times(schedule("cron(30 2 * * ? *)", "Europe/Berlin"), "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
                         ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        # Every 20 minutes through the overlap: 02:00, 02:20, 02:40 once each, then 03:00 CET.
        night = times(schedule("cron(0/20 2-3 * * ? *)", "Europe/Berlin"), "2026-10-24T23:30:00Z", "2026-10-25T02:30:00Z")
        self.assertEqual(night, ["2026-10-25T00:00:00Z", "2026-10-25T00:20:00Z", "2026-10-25T00:40:00Z",
                                 "2026-10-25T02:00:00Z", "2026-10-25T02:20:00Z"])

    def test_a_rate_counts_elapsed_time_across_the_change(self):
        s = schedule("rate(1 day)", "Europe/Berlin", StartDate=t("2026-03-28T01:00:00Z"))
        self.assertEqual(times(s, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
                         ["2026-03-28T01:00:00Z", "2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"])


class Window(unittest.TestCase):
    def test_start_and_end_dates_are_inclusive(self):
        s = schedule("cron(0 12 * * ? *)", StartDate=t("2026-05-02T12:00:00Z"), EndDate=t("2026-05-04T12:00:00Z"))
        self.assertEqual(times(s, "2026-05-01T00:00:00Z", "2026-05-09T00:00:00Z"),
                         ["2026-05-02T12:00:00Z", "2026-05-03T12:00:00Z", "2026-05-04T12:00:00Z"])
        s["EndDate"] = t("2026-05-04T11:59:59Z")
        self.assertEqual(len(times(s, "2026-05-01T00:00:00Z", "2026-05-09T00:00:00Z")), 2)

    def test_the_asked_range_is_half_open(self):
        s = schedule("cron(0 12 * * ? *)")
        self.assertEqual(times(s, "2026-05-02T12:00:00Z", "2026-05-03T12:00:00Z"), ["2026-05-02T12:00:00Z"])

    def test_a_recurring_schedule_completes_at_its_end_date(self):
        s = schedule("cron(0 12 * * ? *)", EndDate=t("2026-05-04T12:00:00Z"), ActionAfterCompletion="DELETE")
        out = fire.due([s], t("2026-05-04T00:00:00Z"), t("2026-05-05T00:00:00Z"))
        self.assertEqual(out["completions"], [{"schedule_arn": ARN, "schedule_name": "task-1", "group": "g",
                                               "completed_at": "2026-05-04T12:00:00Z", "action_after_completion": "DELETE"}])

    def test_a_disabled_schedule_invokes_nothing(self):
        self.assertEqual(times(schedule("rate(5 minutes)", State="DISABLED", StartDate=t("2026-01-01T00:00:00Z")),
                               "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"), [])


class OneTime(unittest.TestCase):
    def test_at_invokes_once_in_its_time_zone_and_ignores_the_window(self):
        s = schedule("at(2026-06-01T09:00:00)", "Europe/Berlin", StartDate=t("2026-07-01T00:00:00Z"),
                     EndDate=t("2026-05-01T00:00:00Z"), ActionAfterCompletion="DELETE")
        out = fire.due([s], t("2026-05-01T00:00:00Z"), t("2026-07-01T00:00:00Z"))
        self.assertEqual([i["scheduled_time"] for i in out["invocations"]], ["2026-06-01T07:00:00Z"])
        self.assertEqual(out["completions"][0]["completed_at"], "2026-06-01T07:00:00Z")
        self.assertEqual(times(s, "2026-06-01T07:00:01Z", "2026-07-01T00:00:00Z"), [])


class Expressions(unittest.TestCase):
    def test_aws_day_of_week_numbers_sunday_as_one(self):
        mondays = times(schedule("cron(0 9 ? * 2 *)"), "2026-06-01T00:00:00Z", "2026-06-16T00:00:00Z")
        self.assertEqual(mondays, ["2026-06-01T09:00:00Z", "2026-06-08T09:00:00Z", "2026-06-15T09:00:00Z"])
        self.assertEqual(times(schedule("cron(0 9 ? * 6L *)"), "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"),
                         ["2026-06-26T09:00:00Z"])  # the last Friday
        self.assertEqual(times(schedule("cron(0 9 ? * 6#3 *)"), "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"),
                         ["2026-06-19T09:00:00Z"])  # the third Friday
        self.assertEqual(times(schedule("cron(0 9 ? * MON-FRI *)"), "2026-06-06T00:00:00Z", "2026-06-09T00:00:00Z"),
                         ["2026-06-08T09:00:00Z"])

    def test_the_year_field(self):
        self.assertEqual(times(schedule("cron(0 9 1 1 ? 2027)"), "2026-01-01T00:00:00Z", "2029-01-01T00:00:00Z"),
                         ["2027-01-01T09:00:00Z"])

    def test_a_malformed_expression_is_an_error(self):
        for bad in ["cron(0 9 * * * *)", "cron(0 9 * *)", "rate(0 minutes)", "every(day)"]:
            with self.assertRaises(fire.ScheduleError, msg=bad):
                times(schedule(bad, StartDate=t("2026-01-01T00:00:00Z")), "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")


class Payloads(unittest.TestCase):
    def test_context_attributes_are_substituted_and_each_attempt_has_its_own_id(self):
        s = schedule("cron(0 12 * * ? *)")
        s["Target"]["Input"] = ('{"a":"<aws.scheduler.schedule-arn>","t":"<aws.scheduler.scheduled-time>",'
                                '"e":"<aws.scheduler.execution-id>","n":"<aws.scheduler.attempt-number>"}')
        first = fire.due([s], t("2026-05-02T00:00:00Z"), t("2026-05-03T00:00:00Z"))["invocations"][0]
        second = fire.due([s], t("2026-05-02T00:00:00Z"), t("2026-05-03T00:00:00Z"), attempt=2)["invocations"][0]
        body = json.loads(first["input"])
        self.assertEqual((body["a"], body["t"], body["n"]), (ARN, "2026-05-02T12:00:00Z", "1"))
        self.assertRegex(body["e"], "^[0-9a-f]{16}$")
        self.assertNotEqual(body["e"], json.loads(second["input"])["e"])
        self.assertEqual((first["role_arn"], first["dead_letter_arn"]), (s["Target"]["RoleArn"], s["Target"]["DeadLetterConfig"]["Arn"]))
        self.assertEqual(first["retry_policy"], {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 86400})

    def test_the_dead_letter_message_is_the_payload_and_the_documented_attributes(self):
        inv = fire.due([schedule("cron(0 12 * * ? *)")], t("2026-05-02T00:00:00Z"), t("2026-05-03T00:00:00Z"))["invocations"][0]
        out = fire.dead_letter(inv, "AWS.Scheduler.ThrottlingException", "Rate exceeded")
        self.assertEqual(out["QueueArn"], "arn:aws:sqs:us-east-1:123456789012:dlq")
        self.assertEqual(json.loads(out["MessageBody"]), {"task_id": "task-1", "scheduled_time": "2026-05-02T12:00:00Z"})
        attrs = {k: v["StringValue"] for k, v in out["MessageAttributes"].items()}
        self.assertEqual(set(attrs), {"ERROR_CODE", "ERROR_MESSAGE", "EXECUTION_ID", "EXHAUSTED_RETRY_CONDITION",
                                      "IS_PAYLOAD_TRUNCATED", "RETRY_ATTEMPTS", "SCHEDULED_TIME", "SCHEDULE_ARN", "TARGET_ARN"})
        self.assertEqual((attrs["RETRY_ATTEMPTS"], attrs["EXHAUSTED_RETRY_CONDITION"], attrs["SCHEDULE_ARN"]),
                         ("2", "MaximumRetryAttempts", ARN))
        not_retried = fire.dead_letter(inv, "AWS.Scheduler.AccessDeniedException", "denied", 0, None)
        self.assertNotIn("EXHAUSTED_RETRY_CONDITION", not_retried["MessageAttributes"])


class FromTheEmulator(unittest.TestCase):
    """fire.py due reads the schedules the service wrote to the IAM emulator, and --apply deletes
    a completed schedule whose ActionAfterCompletion is DELETE."""

    def test_due_reads_the_group_and_applies_completion(self):
        from emulated_stack import env
        import boto3
        endpoint = env("TIDEMARK_IAM_ENDPOINT_URL")
        scheduler = boto3.client("scheduler", endpoint_url=endpoint, region_name="us-east-1",
                                 aws_access_key_id=env("TIDEMARK_IAM_ACCESS_KEY_ID"),
                                 aws_secret_access_key=env("TIDEMARK_IAM_SECRET_ACCESS_KEY"))
        group = f"fire-{uuid.uuid4().hex[:8]}"
        scheduler.create_schedule_group(Name=group)
        target = {"Arn": "arn:aws:lambda:us-east-1:123456789012:function:f", "RoleArn": "arn:aws:iam::123456789012:role/r",
                  "Input": '{"t":"<aws.scheduler.scheduled-time>"}'}
        soon = (datetime.now(UTC) + timedelta(days=2)).replace(hour=3, minute=0, second=0, microsecond=0)
        scheduler.create_schedule(Name="daily", GroupName=group, ScheduleExpression="cron(0 3 * * ? *)",
                                  ScheduleExpressionTimezone="Europe/Berlin", FlexibleTimeWindow={"Mode": "OFF"},
                                  Target=target, EndDate=soon + timedelta(days=1))
        scheduler.create_schedule(Name="once", GroupName=group, ScheduleExpression=f"at({soon:%Y-%m-%dT%H:%M:%S})",
                                  FlexibleTimeWindow={"Mode": "OFF"}, Target=target, ActionAfterCompletion="DELETE")
        done = subprocess.run([sys.executable, os.path.join(HERE, "fire.py"), "due", "--endpoint", endpoint, "--group", group,
                               "--from", (soon - timedelta(days=1)).isoformat(), "--to", (soon + timedelta(days=3)).isoformat(),
                               "--apply"], capture_output=True, text=True, check=True)
        out = json.loads(done.stdout)
        self.assertEqual({i["schedule_name"] for i in out["invocations"]}, {"daily", "once"})
        once = [i for i in out["invocations"] if i["schedule_name"] == "once"]
        self.assertEqual([json.loads(i["input"])["t"] for i in once], [fire.iso(soon)])
        self.assertEqual(len([i for i in out["invocations"] if i["schedule_name"] == "daily"]), 2)
        names = {s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]}
        self.assertEqual(names, {"daily"})  # completed, but NONE: it stays


if __name__ == "__main__":
    unittest.main()

"""simulate.mjs: calls recorded in the IAM emulator, judged against the unmodified policies."""
import copy
import json
import os
import subprocess
import tempfile
import unittest

from botocore.exceptions import ClientError

from emulated_stack import EmulatedStack

HERE = os.path.dirname(os.path.abspath(__file__))


def statements(stack, role, policy_name):
    [policy] = [p for p in stack["Resources"][role]["Properties"]["Policies"] if p["PolicyName"] == policy_name]
    return policy["PolicyDocument"]["Statement"]


def with_statements(stack, role, keep, add=()):
    """A copy of the stack whose role keeps the statements `keep` says yes to (of its inline
    policies and of the stack's own managed policies, which it may have attached), plus `add`."""
    out = copy.deepcopy(stack)
    policies = out["Resources"][role]["Properties"]["Policies"]
    for policy in policies:
        policy["PolicyDocument"]["Statement"] = [s for s in policy["PolicyDocument"]["Statement"] if keep(s)]
    for resource in out["Resources"].values():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            document = resource["Properties"]["PolicyDocument"]
            if isinstance(document, str):  # a document built with !Sub is JSON text
                document = json.loads(document)
            document["Statement"] = [s for s in document["Statement"] if keep(s)]
            resource["Properties"]["PolicyDocument"] = document
    policies.append({"PolicyName": "added", "PolicyDocument": {"Version": "2012-10-17", "Statement": list(add)}})
    return out


def reads(action):
    return lambda s: action not in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])


class Simulate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A stack of its own: the emulator tests' refused calls are in the shared one's record.
        cls.s = s = EmulatedStack()
        admin = s.client("secretsmanager")
        cls.plain = admin.create_secret(Name=f"rds/{s.stage}/plain", SecretString="p")["ARN"]
        cls.cmk = admin.create_secret(Name=f"rds/{s.stage}/cmk", SecretString="p", KmsKeyId=s.key_arn)["ARN"]
        cls.tagged = admin.create_secret(Name=f"rds/{s.stage}/tagged", SecretString="p",
                                         Tags=[{"Key": "tidemark", "Value": "yes"}])["ARN"]
        s.client("secretsmanager", "RunWorkerFunction").get_secret_value(SecretId=f"rds/{s.stage}/plain")
        s.client("dynamodb", "RunWorkerFunction").get_item(
            TableName=s.resource("StateTable")["PhysicalId"], Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
        s.client("sqs", "RunWorkerFunction").send_message(
            QueueUrl=s.resource("StepQueue")["PhysicalId"], MessageBody="{}")
        s.client("scheduler", "ManageTaskFunction").create_schedule(
            Name="task-1", GroupName=s.resource("ScheduleGroup")["PhysicalId"], ScheduleExpression="rate(1 hour)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": s.resource("RunCycleFunction")["Attributes"]["Arn"],
                    "RoleArn": s.resource("SchedulerRole")["Attributes"]["Arn"],
                    "DeadLetterConfig": {"Arn": s.resource("StepDeadLetterQueue")["Attributes"]["Arn"]}})
        try:  # the emulator refuses it too (no kms:Decrypt); the record is what is judged here
            s.client("secretsmanager", "PrecheckFunction").get_secret_value(SecretId=cls.cmk)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDeniedException", e
        s.client("secretsmanager", "CreateTaskFunction").get_secret_value(SecretId=cls.tagged)
        s.client("secretsmanager", "CreateTaskFunction").get_secret_value(SecretId=cls.plain)

    def simulate(self, functions, stack=None, *extra):
        """(exit code, report) of simulate.mjs over the calls of these functions' keys."""
        with tempfile.TemporaryDirectory() as d:
            stack_path, creds_path = os.path.join(d, "stack.json"), os.path.join(d, "creds.json")
            with open(stack_path, "w") as f:
                json.dump(stack or self.s.stack, f)
            with open(creds_path, "w") as f:
                json.dump({k: v for k, v in self.s.creds.items() if k in functions}, f)
            done = subprocess.run(["node", os.path.join(HERE, "simulate.mjs"), "--stack", stack_path, "--creds",
                                   creds_path, "--calls", self.s.calls_path, *extra], capture_output=True, text=True)
        if done.returncode not in (0, 1):
            self.fail(done.stderr)
        return done.returncode, json.loads(done.stdout)

    def verdict(self, report, action, resource):
        [v] = [v for v in report["verdicts"] if v["action"] == action and v["resource"] == resource]
        return v["result"]

    def test_recorded_calls_are_allowed_under_the_unmodified_policies(self):
        code, report = self.simulate({"RunWorkerFunction", "ManageTaskFunction", "SchedulerRole"})
        self.assertEqual((code, report["denied"]), (0, 0), report)
        sources = {(v["source"], v["action"]) for v in report["verdicts"]}
        self.assertTrue({("call", "secretsmanager:GetSecretValue"), ("call", "dynamodb:GetItem"),
                         ("call", "sqs:SendMessage"), ("implied", "iam:PassRole"),
                         ("implied", "lambda:InvokeFunction"), ("template", "sqs:ReceiveMessage")} <= sources)

    def test_removing_the_statement_a_call_needs_denies_it(self):
        stack = with_statements(self.s.stack, "RunWorkerFunctionRole", reads("secretsmanager:GetSecretValue"))
        code, report = self.simulate({"RunWorkerFunction"}, stack)
        self.assertEqual(code, 1)
        self.assertEqual(self.verdict(report, "secretsmanager:GetSecretValue", self.plain), "ImplicitlyDenied")
        self.assertEqual(report["denied"], 1)

    def test_kms_decrypt_through_secrets_manager_needs_a_statement_naming_the_key(self):
        code, report = self.simulate({"PrecheckFunction"})
        self.assertEqual(self.verdict(report, "secretsmanager:GetSecretValue", self.cmk), "Allowed")
        self.assertEqual(self.verdict(report, "kms:Decrypt", self.s.key_arn), "ImplicitlyDenied")
        self.assertEqual(code, 1)
        via = {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
        for key, condition, expected in [(self.s.key_arn, via, "Allowed"),
                                         (self.s.key_arn.replace("key/", "key/0"), via, "ImplicitlyDenied"),
                                         (self.s.key_arn, {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}},
                                          "ImplicitlyDenied")]:
            stack = with_statements(self.s.stack, "PrecheckFunctionRole", lambda s: True, [
                {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key, "Condition": condition}])
            code, report = self.simulate({"PrecheckFunction"}, stack)
            self.assertEqual(self.verdict(report, "kms:Decrypt", self.s.key_arn), expected, (key, condition))
            self.assertEqual(code, 0 if expected == "Allowed" else 1)

    def test_a_tag_scoped_statement_allows_the_tagged_secret_only(self):
        scoped = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
                  "Condition": {"StringEquals": {"secretsmanager:ResourceTag/tidemark": "yes"}}}
        stack = with_statements(self.s.stack, "CreateTaskFunctionRole", reads("secretsmanager:GetSecretValue"), [scoped])
        code, report = self.simulate({"CreateTaskFunction"}, stack)
        self.assertEqual(self.verdict(report, "secretsmanager:GetSecretValue", self.tagged), "Allowed")
        self.assertEqual(self.verdict(report, "secretsmanager:GetSecretValue", self.plain), "ImplicitlyDenied")
        self.assertEqual(code, 1)

    def test_necessity_names_the_calls_each_statement_serves_and_the_unused(self):
        code, report = self.simulate({"RunWorkerFunction"}, None, "--necessity")
        self.assertEqual(code, 1)  # RunWorkerFunction's record here needs few of its statements
        by_id = {(n["role"], n["policy"], n["statement"]): n for n in report["necessity"]}
        # The stack's own managed policy: its AllowedSecretArns statement (rds/*) allows the read.
        secrets = by_id[("RunWorkerFunctionRole", "SecretReadPolicy", 1)]
        self.assertEqual(secrets["needed_by"], [f"secretsmanager:GetSecretValue {self.plain}"])
        self.assertTrue(by_id[("RunWorkerFunctionRole", "SecretReadPolicy", 0)]["unused"])
        # The schedules statement: nothing here reads or deletes a schedule as run-worker.
        self.assertTrue(by_id[("RunWorkerFunctionRole", "RunWorkerFunctionRolePolicy3", 1)]["unused"])
        table = by_id[("RunWorkerFunctionRole", "RunWorkerFunctionRolePolicy0", 0)]
        self.assertFalse(table["unused"])
        self.assertIn("dynamodb:Query", table["unused_actions"])
        self.assertNotIn("dynamodb:GetItem", table["unused_actions"])
        # The schedule SAM makes for the sweep: its role's one statement serves the template.
        sweep = by_id[("RunCycleFunctionSweepRole", "RunCycleFunctionSweepLambdaPolicy", 0)]
        self.assertFalse(sweep["unused"])

    def test_probes_say_what_a_policy_would_decide(self):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as probes:
            for line in [{"function": "RunWorkerFunction", "action": "secretsmanager:CreateSecret",
                          "resources": [self.plain], "expect": "denied"},
                         {"function": "RunWorkerFunction", "action": "secretsmanager:GetSecretValue",
                          "resources": [self.plain], "expect": "allowed"}]:
                probes.write(json.dumps(line) + "\n")
            probes.flush()
            code, report = self.simulate(set(), None, "--probe", probes.name)
        self.assertEqual((code, report["unexpected"]), (0, 0), report["probes"])
        self.assertEqual([p["result"] for p in report["probes"]], ["ImplicitlyDenied", "Allowed"])


if __name__ == "__main__":
    unittest.main()

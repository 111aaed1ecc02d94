"""For the tests here: one stack of template.yaml in the IAM emulator, as the harness makes one.

render + roles.load + the resources the roles name (table, queues, schedule group) made with the
emulator's administrator key, plus a customer-managed KMS key. Made once per test process.
"""
import functools
import json
import os
import tempfile
import uuid

import boto3

import roles
import stack

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "..", "..", "template.yaml")


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: start the stack (infra/local/stack.sh start) "
                           "and source .stack/env")
    return value


class EmulatedStack:
    def __init__(self):
        self.endpoint = env("TIDEMARK_IAM_ENDPOINT_URL")
        self.calls_path = env("TIDEMARK_IAM_CALLS")
        self.admin = boto3.session.Session(aws_access_key_id=env("TIDEMARK_IAM_ACCESS_KEY_ID"),
                                           aws_secret_access_key=env("TIDEMARK_IAM_SECRET_ACCESS_KEY"),
                                           region_name="us-east-1")
        self.dir = tempfile.mkdtemp(prefix="tidemark-aws-")
        suffix = uuid.uuid4().hex[:8]
        self.stage = f"t{suffix}"
        names = {"stack_name": f"tm-{suffix}", "parameters": {"StageName": self.stage, "AllowHosts": "127.0.0.1/32",
                                  "AllowedSecretArns": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds/*"},
                 "sqs_endpoint": self.endpoint}
        with open(TEMPLATE) as f:
            self.stack = stack.render(f.read(), names)
        self.stack_path = os.path.join(self.dir, "stack.json")
        with open(self.stack_path, "w") as f:
            json.dump(self.stack, f)
        self._make_resources()
        self.creds = roles.load(self.client("iam"), self.client("sts"), self.stack,
                                self.client("sts").get_caller_identity()["Arn"])
        self.creds_path = os.path.join(self.dir, "creds.json")
        with open(self.creds_path, "w") as f:
            json.dump(self.creds, f)

    def resource(self, logical):
        return self.stack["Resources"][logical]

    def client(self, service, function=None):
        """A client with the administrator's key, or with a function's assumed role."""
        if function is None:
            return self.admin.client(service, endpoint_url=self.endpoint)
        c = self.creds[function]
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=c["access_key_id"],
                            aws_secret_access_key=c["secret_access_key"],
                            aws_session_token=c["session_token"])

    def _make_resources(self):
        table = self.resource("StateTable")
        self.client("dynamodb").create_table(
            TableName=table["PhysicalId"], BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=table["Properties"]["AttributeDefinitions"],
            KeySchema=table["Properties"]["KeySchema"])
        sqs = self.client("sqs")
        for logical, res in self.stack["Resources"].items():
            if res["Type"] == "AWS::SQS::Queue":
                sqs.create_queue(QueueName=res["Attributes"]["QueueName"])
        self.client("scheduler").create_schedule_group(Name=self.resource("ScheduleGroup")["PhysicalId"])
        self.key_arn = self.client("kms").create_key(Description="a customer-managed key")["KeyMetadata"]["Arn"]

    def calls(self, function):
        """The recorded calls made with a function's key."""
        key = self.creds[function]["access_key_id"]
        with open(self.calls_path) as f:
            return [line for line in map(json.loads, f) if line["access_key"] == key]


@functools.lru_cache(maxsize=None)
def emulated_stack():
    return EmulatedStack()

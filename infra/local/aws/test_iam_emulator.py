"""The IAM emulator (stack.sh's second moto server) with the template's roles (roles.py load):
enforcement is real under an assumed role, and every call is recorded with its resource ARNs and
the calls AWS makes on the caller's behalf."""
import json
import unittest

import boto3
from botocore.exceptions import ClientError

import roles
from emulated_stack import emulated_stack
from roles import moto_copy


def denied(test, call):
    with test.assertRaises(ClientError) as caught:
        call()
    return caught.exception.response["Error"]["Code"]


class Enforcement(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = emulated_stack()
        cls.table = cls.s.resource("StateTable")["PhysicalId"]

    def test_a_role_may_call_what_its_policy_allows_and_nothing_else(self):
        manage = self.s.client("dynamodb", "ManageTaskFunction")
        manage.get_item(TableName=self.table, Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
        self.assertEqual(denied(self, lambda: manage.delete_table(TableName=self.table)),
                         "AccessDeniedException")
        # ManageTaskFunction's policy names no secretsmanager:CreateSecret (create-task's does).
        self.assertEqual(denied(self, lambda: self.s.client("secretsmanager", "ManageTaskFunction")
                                .create_secret(Name=f"tidemark/{self.s.stage}/x", SecretString="p")),
                         "AccessDeniedException")
        self.s.client("secretsmanager", "CreateTaskFunction").create_secret(
            Name=f"tidemark/{self.s.stage}/created", SecretString="p")
        self.assertEqual(denied(self, lambda: self.s.client("scheduler", "RunWorkerFunction").create_schedule(
            Name="x", GroupName=self.s.resource("ScheduleGroup")["PhysicalId"],
            ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                    "RoleArn": self.s.resource("SchedulerRole")["Attributes"]["Arn"]})),
            "AccessDeniedException")

    def test_a_transaction_is_authorized_by_its_items_actions(self):
        # IAM has no dynamodb:TransactWriteItems action: each item's PutItem/UpdateItem/... is
        # checked (moto on its own checked the API name and refused every transaction).
        self.s.client("dynamodb", "RunWorkerFunction").transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}},
            {"Update": {"TableName": self.table, "Key": {"pk": {"S": "t"}, "sk": {"S": "2"}},
                        "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "1"}}}}])
        [line] = [c for c in self.s.calls("RunWorkerFunction") if c["api"] == "dynamodb:TransactWriteItems"]
        table_arn = self.s.resource("StateTable")["Attributes"]["Arn"]
        self.assertEqual(line["actions"], [{"action": "dynamodb:PutItem", "resources": [table_arn]},
                                           {"action": "dynamodb:UpdateItem", "resources": [table_arn]}])

    def test_a_secret_under_a_customer_managed_key_needs_kms_decrypt(self):
        # AWS refuses GetSecretValue when the caller may not kms:Decrypt the secret's key.
        name = f"rds/{self.s.stage}/enforced-cmk"
        self.s.client("secretsmanager").create_secret(Name=name, SecretString="p", KmsKeyId=self.s.key_arn)
        worker = self.s.client("secretsmanager", "RunWorkerFunction")
        self.assertEqual(denied(self, lambda: worker.get_secret_value(SecretId=name)), "AccessDeniedException")
        iam, admin_arn = self.s.client("iam"), self.s.client("sts").get_caller_identity()["Arn"]
        role = iam.create_role(RoleName=f"kms-reader-{self.s.stage}",
                               AssumeRolePolicyDocument=json.dumps(roles.trust(admin_arn)))["Role"]["Arn"]
        iam.put_role_policy(RoleName=f"kms-reader-{self.s.stage}", PolicyName="read", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                                                     "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"]}]}))
        c = self.s.client("sts").assume_role(RoleArn=role, RoleSessionName="reader")["Credentials"]
        reader = boto3.client("secretsmanager", endpoint_url=self.s.endpoint, region_name="us-east-1",
                              aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                              aws_session_token=c["SessionToken"])
        self.assertEqual(reader.get_secret_value(SecretId=name)["SecretString"], "p")

    def test_an_unknown_key_is_refused(self):
        stranger = boto3.client("dynamodb", endpoint_url=self.s.endpoint, region_name="us-east-1",
                                aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="x")
        self.assertEqual(denied(self, lambda: stranger.list_tables()), "UnrecognizedClientException")

    def test_a_wrong_session_token_is_refused(self):
        c = self.s.creds["RunWorkerFunction"]
        forged = boto3.client("dynamodb", endpoint_url=self.s.endpoint, region_name="us-east-1",
                              aws_access_key_id=c["access_key_id"], aws_secret_access_key=c["secret_access_key"],
                              aws_session_token=c["session_token"] + "x")
        self.assertEqual(denied(self, lambda: forged.list_tables()), "UnrecognizedClientException")


class Recorder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = s = emulated_stack()
        cls.secret = s.client("secretsmanager").create_secret(
            Name=f"rds/{s.stage}/cmk", SecretString='{"username":"u","password":"p"}', KmsKeyId=s.key_arn)["ARN"]
        s.client("secretsmanager").create_secret(Name=f"rds/{s.stage}/default", SecretString="p")
        worker = s.client("secretsmanager", "RunWorkerFunction")
        try:  # refused: the role has no kms:Decrypt (see Enforcement)
            worker.get_secret_value(SecretId=f"rds/{s.stage}/cmk")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDeniedException", e
        worker.get_secret_value(SecretId=f"rds/{s.stage}/default")
        s.client("sqs", "RunWorkerFunction").send_message(
            QueueUrl=s.resource("StepQueue")["PhysicalId"], MessageBody="{}")
        cls.group = s.resource("ScheduleGroup")["PhysicalId"]
        cls.target = {"Arn": s.resource("RunCycleFunction")["Attributes"]["Arn"],
                      "RoleArn": s.resource("SchedulerRole")["Attributes"]["Arn"],
                      "DeadLetterConfig": {"Arn": s.resource("StepDeadLetterQueue")["Attributes"]["Arn"]}}
        manage = s.client("scheduler", "ManageTaskFunction")
        manage.create_schedule(Name="task-1", GroupName=cls.group, ScheduleExpression="cron(0 3 * * ? *)",
                               FlexibleTimeWindow={"Mode": "OFF"}, Target=cls.target)
        manage.get_schedule(Name="task-1", GroupName=cls.group)
        cls.tagged = s.client("secretsmanager", "CreateTaskFunction").create_secret(
            Name=f"tidemark/{s.stage}/t1/source", SecretString="p", Tags=[{"Key": "tidemark:task-id", "Value": "t1"}])["ARN"]
        cls.worker_calls = s.calls("RunWorkerFunction")
        cls.manage_calls = s.calls("ManageTaskFunction")
        cls.create_calls = s.calls("CreateTaskFunction")

    def one(self, calls, api, **match):
        found = [c for c in calls if c["api"] == api and all(c.get(k) == v for k, v in match.items())]
        self.assertTrue(found, f"no recorded {api} {match}")
        return found[-1]

    def test_a_secret_named_by_name_is_recorded_by_its_full_arn_with_its_key(self):
        line = self.one(self.worker_calls, "secretsmanager:GetSecretValue", resources=[self.secret])
        self.assertEqual((line["action"], line["error"]), ("secretsmanager:GetSecretValue", "AccessDeniedException"))
        [decrypt] = line["implied"]
        self.assertEqual((decrypt["action"], decrypt["resources"]), ("kms:Decrypt", [self.s.key_arn]))
        self.assertEqual(decrypt["context"]["kms:ViaService"], "secretsmanager.us-east-1.amazonaws.com")
        self.assertEqual(decrypt["context"]["kms:EncryptionContext:SecretARN"], self.secret)

    def test_a_secret_created_with_tags_implies_tag_resource_on_it(self):
        line = self.one(self.create_calls, "secretsmanager:CreateSecret")
        self.assertEqual((line["resources"], line["error"]), ([self.tagged], None))
        self.assertEqual([(i["action"], i["resources"]) for i in line["implied"]],
                         [("secretsmanager:TagResource", [self.tagged])])

    def test_a_secret_under_the_aws_managed_key_implies_no_kms_call(self):
        line = [c for c in self.worker_calls if c["api"] == "secretsmanager:GetSecretValue"
                and "/default-" in c["resources"][0]][-1]
        self.assertEqual(line["implied"], [])

    def test_queue_url_and_table_name_become_arns(self):
        line = self.one(self.worker_calls, "sqs:SendMessage")
        self.assertEqual(line["resources"], [self.s.resource("StepQueue")["Attributes"]["Arn"]])
        line = self.one(self.manage_calls, "scheduler:GetSchedule")
        self.assertEqual(line["resources"],
                         [f"arn:aws:scheduler:us-east-1:123456789012:schedule/{self.group}/task-1"])

    def test_creating_a_schedule_implies_passing_its_role_and_what_the_role_then_does(self):
        line = self.one(self.manage_calls, "scheduler:CreateSchedule")
        self.assertEqual(line["status"], 200)
        implied = {(i["action"], tuple(i["resources"]), i.get("role_arn")) for i in line["implied"]}
        role = self.target["RoleArn"]
        self.assertEqual(implied, {("iam:PassRole", (role,), None),
                                   ("lambda:InvokeFunction", (self.target["Arn"],), role),
                                   ("sqs:SendMessage", (self.target["DeadLetterConfig"]["Arn"],), role)})

    def test_a_refused_call_is_recorded_with_its_status(self):
        with self.assertRaises(ClientError):
            self.s.client("dynamodb", "PrecheckFunction").delete_table(
                TableName=self.s.resource("StateTable")["PhysicalId"])
        line = self.one(self.s.calls("PrecheckFunction"), "dynamodb:DeleteTable")
        self.assertEqual((line["status"], line["error"]), (400, "AccessDeniedException"))


class MotoCopy(unittest.TestCase):
    def test_resources_are_widened_conditions_and_denies_dropped(self):
        doc = {"Statement": [
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:1:key/k",
             "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}},
            {"Effect": "Deny", "Action": "*", "Resource": "arn:aws:s3:::x"}]}
        self.assertEqual(moto_copy(doc), {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]})
        self.assertEqual(json.loads(json.dumps(doc))["Statement"][0]["Resource"], "arn:aws:kms:us-east-1:1:key/k")


if __name__ == "__main__":
    unittest.main()

"""stack.py render: the repository's template.yaml, translated and resolved for one stack."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import stack

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "..", "..", "template.yaml")
NAMES = {
    "stack_name": "tm-a", "region": "us-east-1", "account": "123456789012",
    "parameters": {"StageName": "a", "AllowHosts": "127.0.0.1/32"}, "sqs_endpoint": "http://127.0.0.1:45782",
    "resources": {
        "StateTable": {"Ref": "tm-a-state",
                       "Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/tm-a-state"},
        "StepQueue": {"Ref": "http://127.0.0.1:45782/123456789012/tm-a-steps",
                      "QueueName": "tm-a-steps",
                      "Arn": "arn:aws:sqs:us-east-1:123456789012:tm-a-steps"},
    },
}


def leftovers(node, path="$"):
    """Every place an intrinsic (a Ref or an Fn:: key) is still in a rendered template."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" or key.startswith("Fn::"):
                found.append(f"{path}.{key}")
            found += leftovers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += leftovers(value, f"{path}[{i}]")
    return found


def render(stack_name=None, **parameters):
    names = json.loads(json.dumps(NAMES))
    names["parameters"].update(parameters)
    if stack_name:
        names["stack_name"] = stack_name
    with open(TEMPLATE) as f:
        return stack.render(f.read(), names)


class RenderTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = render()
        cls.res = cls.out["Resources"]

    def test_no_intrinsic_is_left(self):
        self.assertEqual(leftovers(self.out), [])
        with_both = render(AlarmEmail="ops@example.com", SubnetIds="subnet-1,subnet-2",
                           SecurityGroupIds="sg-1")
        self.assertEqual(leftovers(with_both), [])

    def test_two_stacks_in_one_account_name_nothing_alike(self):
        """Two deployments (other stack name, other StageName) side by side in one account and
        region: every name the template fixes itself is a different one, so neither stack's
        creation fails on the other's resource."""
        fields = {"AWS::Lambda::Function": "FunctionName", "AWS::Scheduler::Schedule": "Name",
                  "AWS::Scheduler::ScheduleGroup": "Name", "AWS::Logs::LogGroup": "LogGroupName",
                  "AWS::IAM::Role": "RoleName", "AWS::SQS::Queue": "QueueName",
                  "AWS::DynamoDB::Table": "TableName", "AWS::SNS::Topic": "TopicName"}

        def fixed(out):
            return {(r["Type"], r["Properties"][fields[r["Type"]]])
                    for r in out["Resources"].values()
                    if r["Type"] in fields and fields[r["Type"]] in r.get("Properties", {})}

        one, other = fixed(self.out), fixed(render(stack_name="tm-b", StageName="b"))
        self.assertTrue(any(kind == "AWS::Scheduler::Schedule" for kind, _ in one), one)
        self.assertEqual(one & other, set())

    def test_functions_get_the_stacks_names(self):
        worker = self.res["RunWorkerFunction"]["Properties"]
        env = worker["Environment"]["Variables"]
        self.assertEqual(env["TIDEMARK_TABLE"], "tm-a-state")
        self.assertEqual(env["TIDEMARK_STEP_QUEUE_URL"], "http://127.0.0.1:45782/123456789012/tm-a-steps")
        self.assertEqual(env["TIDEMARK_PRECHECK_QUEUE_URL"],
                         "http://127.0.0.1:45782/123456789012/tm-a-PrecheckQueue")
        self.assertEqual(env["TIDEMARK_SCHEDULE_GROUP"], "tidemark-a")
        self.assertEqual(env["TIDEMARK_SECRET_PREFIX"], "tidemark/a/")
        self.assertEqual(env["TIDEMARK_RUN_CYCLE_ARN"],
                         "arn:aws:lambda:us-east-1:123456789012:function:tm-a-run-cycle")
        self.assertEqual(env["TIDEMARK_SCHEDULER_ROLE_ARN"],
                         "arn:aws:iam::123456789012:role/tm-a-SchedulerRole")
        # Number parameters resolve to their text, as CloudFormation passes them.
        self.assertEqual((worker["Timeout"], worker["MemorySize"], worker["Handler"]), ("300", "1769", "bootstrap"))
        self.assertEqual(worker["Role"], self.res["RunWorkerFunctionRole"]["Attributes"]["Arn"])
        self.assertEqual(self.res["RunCycleFunction"]["PhysicalId"], "tm-a-run-cycle")
        self.assertEqual(self.res["RunWorkerFunction"]["Metadata"]["BuildProperties"]["Binary"], "run-worker")
        # The AWS::NoValue branch of Globals' VpcConfig: no key at all.
        self.assertNotIn("VpcConfig", worker)

    def test_event_sources_and_queues(self):
        steps = self.res["RunWorkerFunctionSteps"]["Properties"]
        self.assertEqual(steps["EventSourceArn"], "arn:aws:sqs:us-east-1:123456789012:tm-a-steps")
        self.assertEqual(steps["FunctionName"], "tm-a-RunWorkerFunction")
        self.assertEqual((steps["BatchSize"], steps["FunctionResponseTypes"]), (1, ["ReportBatchItemFailures"]))
        queue = self.res["StepQueue"]["Properties"]
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"],
                         "arn:aws:sqs:us-east-1:123456789012:tm-a-StepDeadLetterQueue")
        invoke = self.res["RunCycleFunctionEventInvokeConfig"]["Properties"]
        self.assertEqual(invoke["DestinationConfig"]["OnFailure"]["Destination"],
                         "arn:aws:sqs:us-east-1:123456789012:tm-a-StepDeadLetterQueue")

    def test_policies_are_concrete_and_unwidened(self):
        policies = self.res["ManageTaskFunctionRole"]["Properties"]["Policies"]
        statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
        resources = [s["Resource"] for s in statements]
        # !GetAtt StateTable.Arn and StepQueue.Arn, resolved.
        self.assertIn("arn:aws:dynamodb:us-east-1:123456789012:table/tm-a-state", resources)
        self.assertIn("arn:aws:sqs:us-east-1:123456789012:tm-a-steps", resources)
        self.assertIn("arn:aws:scheduler:us-east-1:123456789012:schedule/tidemark-a/*", resources)
        self.assertIn("arn:aws:iam::123456789012:role/tm-a-SchedulerRole", resources)

    def test_routes_are_the_templates(self):
        self.assertEqual(
            [(r["method"], r["path"], r["function"]) for r in self.out["Routes"]],
            [("POST", "/connections/test", "PrecheckFunction"),
             ("GET", "/health", "ManageTaskFunction"),
             ("GET", "/tasks", "ManageTaskFunction"),
             ("POST", "/tasks", "CreateTaskFunction"),
             ("POST", "/tasks/{id}/precheck", "PrecheckFunction"),
             ("ANY", "/tasks/{proxy+}", "ManageTaskFunction")])

    def test_conditions_choose_resources_and_values(self):
        self.assertNotIn("AlarmSubscription", self.res)
        out = render(AlarmEmail="ops@example.com", SubnetIds="subnet-1,subnet-2", SecurityGroupIds="sg-1")
        self.assertEqual(out["Resources"]["AlarmSubscription"]["Properties"]["Endpoint"], "ops@example.com")
        vpc = out["Resources"]["PrecheckFunction"]["Properties"]["VpcConfig"]
        self.assertEqual(vpc, {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]})

    def test_a_bad_parameter_is_refused(self):
        with self.assertRaisesRegex(stack.RenderError, "StageName"):
            render(StageName="Not Valid")
        with self.assertRaisesRegex(stack.RenderError, "lacks"):
            render(NoSuchParameter="x")

    def test_the_cli_writes_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            names = os.path.join(d, "names.json")
            with open(names, "w") as f:
                json.dump(NAMES, f)
            out = os.path.join(d, "stack.json")
            subprocess.run([sys.executable, os.path.join(HERE, "stack.py"), "render", "--template",
                            TEMPLATE, "--names", names, "--out", out], check=True)
            with open(out) as f:
                self.assertEqual(json.load(f)["Stack"]["name"], "tm-a")


class Intrinsics(unittest.TestCase):
    """The functions template.yaml does not use today, on a small template (no SAM transform)."""

    def resolve(self, node, **template):
        template.setdefault("Resources", {"Q": {"Type": "AWS::SQS::Queue"}})
        return stack.Stack(template, {"stack_name": "s"}).resolve(node)

    def test_sub_select_split_findinmap_and_or(self):
        self.assertEqual(self.resolve({"Fn::Sub": ["${a}-${Q.QueueName}-${!Literal}", {"a": {"Ref": "AWS::Region"}}]}),
                         "us-east-1-s-Q-${Literal}")
        self.assertEqual(self.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}), "y")
        self.assertEqual(self.resolve({"Fn::FindInMap": ["M", "a", "b"]}, Mappings={"M": {"a": {"b": 7}}}), 7)
        self.assertEqual(self.resolve({"Fn::If": ["C", 1, 2]},
                                      Conditions={"C": {"Fn::And": [{"Fn::Equals": [1, 1]},
                                                                    {"Fn::Or": [{"Condition": "D"}, True]}]},
                                                  "D": {"Fn::Equals": ["a", "b"]}}), 1)
        self.assertEqual(self.resolve([1, {"Ref": "AWS::NoValue"}, 2]), [1, 2])

    def test_an_unknown_function_is_an_error(self):
        with self.assertRaisesRegex(stack.RenderError, "ImportValue"):
            self.resolve({"Fn::ImportValue": "x"})
        with self.assertRaisesRegex(stack.RenderError, "unknown resource"):
            self.resolve({"Fn::GetAtt": ["Nope", "Arn"]})


if __name__ == "__main__":
    unittest.main()

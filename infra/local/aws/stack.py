"""template.yaml as one emulator stack would deploy it: translated, then every intrinsic resolved.

    stack.py render --template template.yaml --names NAMES.json --out STACK.json

The SAM transform is aws-sam-translator's own (pinned in infra/local/install.sh to the version
aws-sam-cli pins, so `sam validate` and this agree). CloudFormation's part — Ref, Fn::GetAtt,
Fn::Sub, Fn::Join, Fn::If and the Conditions, Fn::Split, Fn::Select, Fn::FindInMap, Fn::Base64,
Fn::GetAZs, AWS::NoValue, the pseudo parameters — is done here for one stack whose names the
harness chose. NAMES.json:

    {"stack_name": "tm-a", "region": "us-east-1", "account": "123456789012",
     "parameters": {"StageName": "a"},
     "sqs_endpoint": "http://127.0.0.1:45782",      # optional: default queue URLs start with it
     "resources": {"StepQueue": {"Ref": "<queue url>", "Arn": "...", "QueueName": "..."}, ...}}

A resource not named there gets a deterministic physical name `<stack_name>-<LogicalId>` (or the
name its properties give, e.g. a schedule group's Name) and the ARNs AWS would make from it.
STACK.json is the translated template with nothing left to resolve, plus:
- "Stack": name, region, account, partition; "Parameters": the values used;
- each resource's "PhysicalId" (what Ref gives) and "Attributes" (what Fn::GetAtt gives);
- "Routes": the HTTP API's routes as [{"method", "path", "function"}] (function: logical id),
  read from the translated API's OpenAPI body ("ANY" for x-amazon-apigateway-any-method).
Resources and Outputs whose Condition is false are left out.
"""
import argparse
import copy
import hashlib
import json
import re
import sys

NO_VALUE = object()
PSEUDO = ("AWS::StackName", "AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::URLSuffix",
          "AWS::StackId", "AWS::NotificationARNs", "AWS::NoValue")


class RenderError(Exception):
    pass


def translate(template, parameters, region):
    """The SAM transform, as `sam validate` runs it (a fake S3 CodeUri for local code)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(template)
    for res in template.get("Resources", {}).values():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str) \
                and not props["CodeUri"].startswith("s3://"):
            props["CodeUri"] = "s3://tidemark-local/code.zip"

    def no_managed_policies():
        raise RenderError("the template names an AWS managed policy by name; give its ARN instead")

    # Only the region is read from the session; nothing is sent anywhere.
    session = boto3.session.Session(region_name=region, aws_access_key_id="unused",
                                    aws_secret_access_key="unused")
    translator = Translator(None, Parser(), boto_session=session)
    out = translator.translate(template, parameter_values=dict(parameters),
                               get_managed_policy_map=no_managed_policies, passthrough_metadata=True)
    translator.metrics.publish()  # its dummy publisher; else it warns when collected
    return out


def _short_id(*parts, n=10):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


class Stack:
    """Resolves one translated template's intrinsics for the names NAMES.json gives."""

    def __init__(self, template, names):
        self.t = template
        self.name = names["stack_name"]
        self.region = names.get("region", "us-east-1")
        self.account = names.get("account", "123456789012")
        self.partition = names.get("partition", "aws")
        self.url_suffix = names.get("url_suffix", "amazonaws.com")
        self.sqs_endpoint = names.get("sqs_endpoint", f"https://sqs.{self.region}.{self.url_suffix}")
        self.given = names.get("resources", {})
        self.params = self._parameters(names.get("parameters", {}))
        self.resources = template.get("Resources", {})
        self.conditions = {}
        self._physical = {}
        self._busy = set()

    # -- parameters and conditions ------------------------------------------------------------

    def _parameters(self, given):
        declared = self.t.get("Parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise RenderError(f"NAMES.json sets parameters the template lacks: {sorted(unknown)}")
        out = {}
        for key, spec in declared.items():
            if key in given:
                value = given[key]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise RenderError(f"parameter {key} has no default: give it in NAMES.json")
            kind = spec.get("Type", "String")
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            value = str(value)
            if "AllowedPattern" in spec and not kind.startswith(("List", "Comma")) \
                    and not re.fullmatch(spec["AllowedPattern"], value):
                raise RenderError(f"parameter {key}={value!r} does not match {spec['AllowedPattern']}")
            if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
                raise RenderError(f"parameter {key}={value!r} is not one of {spec['AllowedValues']}")
            out[key] = value.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") \
                else value
        return out

    def condition(self, name):
        if name not in self.conditions:
            spec = self.t.get("Conditions", {}).get(name)
            if spec is None:
                raise RenderError(f"unknown condition {name}")
            self.conditions[name] = None  # a cycle shows as a non-boolean below
            value = self.resolve(spec)
            if not isinstance(value, bool):
                raise RenderError(f"condition {name} is not a boolean: {value!r}")
            self.conditions[name] = value
        if self.conditions[name] is None:
            raise RenderError(f"condition {name} refers to itself")
        return self.conditions[name]

    # -- physical names -----------------------------------------------------------------------

    def physical(self, logical):
        """{"Ref": ..., attribute: ...} for one resource: NAMES.json's, else AWS's shape."""
        if logical in self._physical:
            return self._physical[logical]
        if logical not in self.resources:
            raise RenderError(f"Ref/GetAtt to unknown resource {logical}")
        if logical in self._busy:
            raise RenderError(f"resource {logical}'s name depends on itself")
        self._busy.add(logical)
        try:
            out = self._default_physical(logical)
        finally:
            self._busy.discard(logical)
        out.update(self.given.get(logical, {}))
        self._physical[logical] = out
        return out

    def _prop(self, logical, key):
        value = (self.resources[logical].get("Properties") or {}).get(key)
        return None if value is None else self.resolve(value)

    def _default_physical(self, logical):
        kind = self.resources[logical]["Type"]
        arn = f"arn:{self.partition}"
        where = f"{self.region}:{self.account}"
        given = self.given.get(logical, {})
        default = f"{self.name}-{logical}"
        if kind == "AWS::SQS::Queue":
            name = given.get("QueueName") or self._prop(logical, "QueueName") or default
            url = f"{self.sqs_endpoint}/{self.account}/{name}"
            return {"Ref": url, "QueueUrl": url, "QueueName": name, "Arn": f"{arn}:sqs:{where}:{name}"}
        if kind == "AWS::DynamoDB::Table":
            name = self._prop(logical, "TableName") or default
            table = f"{arn}:dynamodb:{where}:table/{name}"
            return {"Ref": name, "Arn": table, "StreamArn": f"{table}/stream/1970-01-01T00:00:00.000"}
        if kind == "AWS::Lambda::Function":
            name = self._prop(logical, "FunctionName") or default
            return {"Ref": name, "Arn": f"{arn}:lambda:{where}:function:{name}"}
        if kind == "AWS::IAM::Role":
            name = self._prop(logical, "RoleName") or default
            path = self._prop(logical, "Path") or "/"
            return {"Ref": name, "Arn": f"{arn}:iam::{self.account}:role{path}{name}",
                    "RoleId": "AROA" + _short_id(self.name, logical, n=17).upper()}
        if kind == "AWS::Scheduler::ScheduleGroup":
            name = self._prop(logical, "Name") or default
            return {"Ref": name, "Arn": f"{arn}:scheduler:{where}:schedule-group/{name}"}
        if kind == "AWS::Scheduler::Schedule":
            name = self._prop(logical, "Name") or default
            group = self._prop(logical, "GroupName") or "default"
            return {"Ref": name, "Arn": f"{arn}:scheduler:{where}:schedule/{group}/{name}"}
        if kind == "AWS::SNS::Topic":
            name = self._prop(logical, "TopicName") or default
            topic = f"{arn}:sns:{where}:{name}"
            return {"Ref": topic, "TopicArn": topic, "TopicName": name}
        if kind == "AWS::Logs::LogGroup":
            name = self._prop(logical, "LogGroupName") or default
            return {"Ref": name, "Arn": f"{arn}:logs:{where}:log-group:{name}:*"}
        if kind == "AWS::ApiGatewayV2::Api":
            api = _short_id(self.name, logical)
            return {"Ref": api, "ApiId": api,
                    "ApiEndpoint": f"https://{api}.execute-api.{self.region}.{self.url_suffix}"}
        if kind == "AWS::KMS::Key":
            key = _short_id(self.name, logical, n=32)
            key = f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}"
            return {"Ref": key, "KeyId": key, "Arn": f"{arn}:kms:{where}:key/{key}"}
        return {"Ref": default}

    def attribute(self, logical, attr):
        found = self.physical(logical)
        if attr not in found:
            raise RenderError(f"Fn::GetAtt {logical}.{attr}: give it in NAMES.json's resources")
        return found[attr]

    def ref(self, name):
        pseudo = {
            "AWS::StackName": self.name, "AWS::Region": self.region, "AWS::AccountId": self.account,
            "AWS::Partition": self.partition, "AWS::URLSuffix": self.url_suffix,
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:"
                            f"stack/{self.name}/{_short_id(self.name, n=8)}",
            "AWS::NotificationARNs": [], "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        return self.physical(name)["Ref"]

    # -- intrinsics ---------------------------------------------------------------------------

    def resolve(self, node):
        if isinstance(node, list):
            out = [self.resolve(v) for v in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key.startswith("Fn::") or key == "Condition" and isinstance(arg, str):
                return self._function(key, arg)
        out = {}
        for key, value in node.items():
            value = self.resolve(value)
            if value is not NO_VALUE:
                out[key] = value
        return out

    def _function(self, fn, arg):
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no)
        if fn == "Fn::Equals":
            a, b = (self.resolve(v) for v in arg)
            return a == b
        if fn == "Fn::Not":
            value = self.resolve(arg[0])
            return not self._boolean(fn, value)
        if fn in ("Fn::And", "Fn::Or"):
            values = [self._boolean(fn, self.resolve(v)) for v in arg]
            return all(values) if fn == "Fn::And" else any(values)
        if fn == "Fn::GetAtt":
            logical, attr = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.attribute(logical, self.resolve(attr))
        if fn == "Fn::Sub":
            return self._sub(arg)
        if fn == "Fn::Join":
            sep, items = arg
            items = self.resolve(items)
            return self.resolve(sep).join(str(v) for v in items)
        if fn == "Fn::Split":
            sep, text = (self.resolve(v) for v in arg)
            return text.split(sep)
        if fn == "Fn::Select":
            index, items = (self.resolve(v) for v in arg)
            return items[int(index)]
        if fn == "Fn::FindInMap":
            name, top, second = (self.resolve(v) for v in arg[:3])
            try:
                return self.t["Mappings"][name][top][second]
            except KeyError:
                raise RenderError(f"Fn::FindInMap: no {name}/{top}/{second}") from None
        if fn == "Fn::Base64":
            import base64
            return base64.b64encode(self.resolve(arg).encode()).decode()
        if fn == "Fn::GetAZs":
            return [f"{self.region}{z}" for z in "abc"]
        if fn == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if fn == "Fn::Length":
            return len(self.resolve(arg))
        raise RenderError(f"{fn} is not supported by stack.py")

    @staticmethod
    def _boolean(fn, value):
        if not isinstance(value, bool):
            raise RenderError(f"{fn} takes conditions, got {value!r}")
        return value

    def _sub(self, arg):
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self.attribute(*name.split(".", 1)))
            value = self.ref(name)
            if value is NO_VALUE or isinstance(value, list):
                raise RenderError(f"Fn::Sub: ${{{name}}} is not a string")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    # -- the whole stack ----------------------------------------------------------------------

    def render(self):
        resources = {}
        for logical, res in self.resources.items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out = {k: self.resolve(v) for k, v in res.items() if k != "Condition"}
            physical = dict(self.physical(logical))
            out["PhysicalId"] = physical.pop("Ref")
            out["Attributes"] = physical
            resources[logical] = out
        outputs = {}
        for key, spec in self.t.get("Outputs", {}).items():
            if "Condition" in spec and not self.condition(spec["Condition"]):
                continue
            outputs[key] = self.resolve({k: v for k, v in spec.items() if k != "Condition"})
        return {
            "Stack": {"name": self.name, "region": self.region, "account": self.account,
                      "partition": self.partition},
            "Parameters": self.params,
            "Resources": resources,
            "Outputs": outputs,
            "Routes": routes(resources),
        }


def routes(resources):
    """The HTTP API's routes from the translated OpenAPI body: method, path, function."""
    by_arn = {r["Attributes"]["Arn"]: logical for logical, r in resources.items()
              if r["Type"] == "AWS::Lambda::Function"}
    out = []
    for res in resources.values():
        if res["Type"] != "AWS::ApiGatewayV2::Api":
            continue
        for path, methods in res.get("Properties", {}).get("Body", {}).get("paths", {}).items():
            for method, op in methods.items():
                integration = op.get("x-amazon-apigateway-integration") if isinstance(op, dict) else None
                if not integration:
                    continue
                match = re.search(r"/functions/(.+)/invocations$", integration.get("uri", ""))
                if not match or match.group(1) not in by_arn:
                    raise RenderError(f"route {method} {path}: no function for {integration.get('uri')}")
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                out.append({"method": verb, "path": path, "function": by_arn[match.group(1)]})
    return sorted(out, key=lambda r: (r["path"], r["method"]))


def render(template_text, names):
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(template_text)
    stack = Stack(template, names)  # checks the parameters before the transform
    sam_params = {k: ",".join(v) if isinstance(v, list) else v for k, v in stack.params.items()}
    translated = translate(template, sam_params, stack.region)
    return Stack(translated, names).render()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("render", help="translate and resolve template.yaml for one stack")
    cmd.add_argument("--template", required=True)
    cmd.add_argument("--names", required=True)
    cmd.add_argument("--out", required=True, help="where STACK.json goes ('-': stdout)")
    args = parser.parse_args(argv)
    with open(args.template) as f:
        text = f.read()
    with open(args.names) as f:
        names = json.load(f)
    try:
        stack = render(text, names)
    except RenderError as e:
        print(f"stack.py: {e}", file=sys.stderr)
        return 1
    body = json.dumps(stack, indent=1, sort_keys=True) + "\n"
    if args.out == "-":
        sys.stdout.write(body)
    else:
        with open(args.out, "w") as f:
            f.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

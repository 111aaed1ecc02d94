"""The template's roles, loaded into the IAM emulator and assumed, as Lambda assumes them.

    roles.py load --endpoint URL --stack STACK.json --out CREDS.json
                  [--access-key-id ID --secret-access-key KEY]   (default: $TIDEMARK_IAM_ACCESS_KEY_ID,
                                                                   $TIDEMARK_IAM_SECRET_ACCESS_KEY)

Every AWS::IAM::Role of STACK.json (stack.py render) is created under its physical name with its
inline policies in the emulator's (moto's) terms — see iam_emulator.py for what moto enforces:
- an Allow statement keeps its Action/NotAction, its Resource (or NotResource) becomes "*" and
  its Condition is dropped, because moto checks most services against the resource "*" and
  treats a condition it cannot evaluate as an explicit deny;
- a Deny statement is left out (moto would apply it to every resource);
- the trust policy names the harness's user (the key above), the principal that assumes the role
  here; on AWS it is the template's (lambda.amazonaws.com, scheduler.amazonaws.com).
The AWS managed policies SAM attaches (AWSLambdaBasicExecutionRole, ...SQSQueueExecutionRole: the
Lambda service's logs and queue polling) are added as inline copies from managed_policies.json
(moto has none by default), so the harness may poll a queue with the function's role as Lambda
does; one not in that file is reported and left out. The unmodified policies stay in STACK.json,
where simulate.mjs evaluates the recorded calls against them.

Each role is then assumed with sts:AssumeRole (session name: the role's logical id). CREDS.json:
    {"<LogicalFunctionId>": {"role_arn", "role_logical_id", "access_key_id", "secret_access_key",
                             "session_token", "expiration"},
     "<LogicalRoleId>": {...}}  (roles no function uses: SchedulerRole, a ScheduleV2 event's role)
The harness runs each function's process with its entry in AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (and AWS_ENDPOINT_URL at the emulator), as Lambda does.
"""
import argparse
import json
import os
import sys

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))


with open(os.path.join(HERE, "managed_policies.json")) as _f:
    MANAGED = {k: v for k, v in json.load(_f).items() if k.startswith("arn:")}


def moto_copy(document):
    """The policy as moto should check it: actions only."""
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        widened = {k: v for k, v in statement.items() if k not in ("Resource", "NotResource", "Condition")}
        widened["Resource"] = "*"
        kept.append(widened)
    return {"Version": "2012-10-17", "Statement": kept}


def trust(principal_arn):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole"}]}


def load(iam, sts, stack, principal_arn):
    resources = stack["Resources"]
    users = {}
    for logical, res in resources.items():
        if res["Type"] == "AWS::Lambda::Function":
            users.setdefault(res["Properties"]["Role"], []).append(logical)
    # The stack's own AWS::IAM::ManagedPolicy resources, by what a role's ManagedPolicyArns holds
    # (their Ref), loaded inline like its Policies; a document built with !Sub is JSON text.
    own = {}
    for logical, res in resources.items():
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            document = res["Properties"]["PolicyDocument"]
            if isinstance(document, str):
                document = json.loads(document)
            for key in (res.get("PhysicalId"), res.get("Attributes", {}).get("Arn")):
                if key:
                    own[key] = (logical, document)
    creds = {}
    for logical, res in sorted(resources.items()):
        if res["Type"] != "AWS::IAM::Role":
            continue
        props = res.get("Properties", {})
        name, arn = res["PhysicalId"], res["Attributes"]["Arn"]
        try:
            iam.create_role(RoleName=name, Path=props.get("Path", "/"),
                            AssumeRolePolicyDocument=json.dumps(trust(principal_arn)))
        except iam.exceptions.EntityAlreadyExistsException:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust(principal_arn)))
        wanted = {}
        for policy in props.get("Policies", []):
            document = moto_copy(policy["PolicyDocument"])
            if document["Statement"]:
                wanted[policy["PolicyName"]] = document
        for managed_arn in props.get("ManagedPolicyArns", []):
            if managed_arn in own:
                policy_logical, document = own[managed_arn]
                wanted[policy_logical] = moto_copy(document)
            elif managed_arn in MANAGED:
                wanted["managed-" + managed_arn.rsplit("/", 1)[1]] = MANAGED[managed_arn]
            else:
                print(f"roles.py: {logical}: managed policy {managed_arn} is not in managed_policies.json: "
                      "left out", file=sys.stderr)
        for old in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            if old not in wanted:
                iam.delete_role_policy(RoleName=name, PolicyName=old)
        for policy_name, document in wanted.items():
            iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
        got = sts.assume_role(RoleArn=arn, RoleSessionName=logical[:64], DurationSeconds=3600)["Credentials"]
        entry = {"role_arn": arn, "role_logical_id": logical, "access_key_id": got["AccessKeyId"],
                 "secret_access_key": got["SecretAccessKey"], "session_token": got["SessionToken"],
                 "expiration": got["Expiration"].isoformat()}
        for function in users.get(arn, [logical]):
            creds[function] = entry
    return creds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("load", help="create and assume the stack's roles in the IAM emulator")
    cmd.add_argument("--endpoint", default=os.environ.get("TIDEMARK_IAM_ENDPOINT_URL"))
    cmd.add_argument("--stack", required=True)
    cmd.add_argument("--out", required=True, help="where CREDS.json goes ('-': stdout)")
    cmd.add_argument("--access-key-id", default=os.environ.get("TIDEMARK_IAM_ACCESS_KEY_ID"))
    cmd.add_argument("--secret-access-key", default=os.environ.get("TIDEMARK_IAM_SECRET_ACCESS_KEY"))
    args = parser.parse_args(argv)
    if not (args.endpoint and args.access_key_id and args.secret_access_key):
        parser.error("the IAM emulator's endpoint and key are needed: source .stack/env (stack.sh start)")
    with open(args.stack) as f:
        stack = json.load(f)
    session = boto3.session.Session(aws_access_key_id=args.access_key_id,
                                    aws_secret_access_key=args.secret_access_key,
                                    region_name=stack["Stack"]["region"])
    iam = session.client("iam", endpoint_url=args.endpoint)
    sts = session.client("sts", endpoint_url=args.endpoint)
    principal = sts.get_caller_identity()["Arn"]
    creds = load(iam, sts, stack, principal)
    body = json.dumps(creds, indent=1, sort_keys=True) + "\n"
    if args.out == "-":
        sys.stdout.write(body)
    else:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

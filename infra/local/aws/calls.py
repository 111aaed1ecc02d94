"""What one request to the emulator asks IAM for: actions, resource ARNs, and the calls AWS makes
on the caller's behalf. Runs inside moto's server (iam_emulator.py), so names are resolved through
moto's own backends: a SecretId given by name becomes the secret's full ARN, a QueueUrl the
queue's ARN, a TableName the table's, a schedule's name and group the schedule's, a KMS alias the
key's ARN.

`authorizations(resp)` is what the request itself needs (IAM action names, not API names:
dynamodb:TransactWriteItems is authorized as the PutItem/UpdateItem/DeleteItem/ConditionCheckItem
of each item's table, sqs:SendMessageBatch as sqs:SendMessage, lambda:Invoke as
lambda:InvokeFunction). `implied(resp, body)` is what AWS then does with the caller's (or a passed
role's) permissions: kms:Decrypt / kms:GenerateDataKey on a secret's customer-managed key,
secretsmanager:TagResource for a secret created with tags,
iam:PassRole for a schedule's role, and the schedule role's own target invocation and dead-letter
send (these carry "role_arn": they are evaluated against that role, not the caller).
"""
import json
from urllib.parse import unquote, urlparse

TRANSACT_ITEM = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
# API operations whose IAM action has another name.
IAM_NAME = {"sqs:SendMessageBatch": "sqs:SendMessage", "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
            "lambda:Invoke": "lambda:InvokeFunction", "lambda:InvokeAsync": "lambda:InvokeFunction"}
# The action a schedule's role needs for its target, by the target ARN's service.
TARGET_ACTION = {"lambda": "lambda:InvokeFunction", "sqs": "sqs:SendMessage", "sns": "sns:Publish",
                 "states": "states:StartExecution", "events": "events:PutEvents"}


def service_of(resp):
    """The signing name (what IAM action names start with), else moto's service name."""
    auth = resp.headers.get("Authorization", "")
    if "Credential=" in auth:
        return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")[3]
    return {"awslambda": "lambda"}.get(resp.service_name, resp.service_name)


def access_key_of(resp):
    auth = resp.headers.get("Authorization", "")
    if "Credential=" in auth:
        return auth.split("Credential=", 1)[1].split("/", 1)[0]
    return None


def params_of(resp):
    out = {}
    if getattr(resp, "automated_parameter_parsing", False) and isinstance(getattr(resp, "params", None), dict):
        out.update(resp.params)
    else:
        raw = getattr(resp, "raw_body", b"") or b""
        try:
            body = json.loads(raw)
            if isinstance(body, dict):
                out.update(body)
        except (ValueError, TypeError):
            pass
    for key, value in (resp.querystring or {}).items():
        out.setdefault(key, value[0] if isinstance(value, list) and value else value)
    return out


class Names:
    """ARNs in this request's account, region and partition, resolved through moto's backends."""

    def __init__(self, resp):
        self.account = resp.current_account
        self.region = resp.region
        self.partition = resp.partition

    def arn(self, service, rest, region=True, account=True):
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{rest}")

    def table(self, name):
        return name if name.startswith("arn:") else self.arn("dynamodb", f"table/{name}")

    def queue(self, url_or_name):
        if url_or_name.startswith("arn:"):
            return url_or_name
        parts = urlparse(url_or_name).path.strip("/").split("/")
        account = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else self.account
        return f"arn:{self.partition}:sqs:{self.region}:{account}:{parts[-1]}"

    def queue_object(self, url_or_name):
        from moto.sqs.models import sqs_backends
        name = self.queue(url_or_name).rsplit(":", 1)[1]
        try:
            return sqs_backends[self.account][self.region].get_queue(name)
        except Exception:  # a queue that does not exist: the request fails on its own
            return None

    def secret(self, secret_id):
        from moto.secretsmanager.models import secretsmanager_backends
        found = secretsmanager_backends[self.account][self.region].secrets.get(secret_id)
        if found is not None:
            return found.arn, found
        if secret_id.startswith("arn:"):
            return secret_id, None
        return self.arn("secretsmanager", f"secret:{secret_id}"), None

    def key(self, key_id):
        """(key ARN, AWS-managed?) for a key id, key ARN, alias name or alias ARN."""
        from moto.kms.models import kms_backends
        backend = kms_backends[self.account][self.region]
        alias = key_id if key_id.startswith("alias/") else (
            "alias/" + key_id.split(":alias/", 1)[1] if ":alias/" in key_id else None)
        try:
            key = backend.keys[backend.any_id_to_key_id(key_id)]
        except Exception:
            key = None
        if key is None:
            if alias:
                return self.arn("kms", alias), alias.startswith("alias/aws/")
            return (key_id if key_id.startswith("arn:") else self.arn("kms", f"key/{key_id}")), False
        aliases = list(getattr(key, "aliases", []) or []) + ([alias] if alias else [])
        return key.arn, any(a.startswith("alias/aws/") for a in aliases)

    def role(self, name_or_arn):
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        from moto.iam.models import iam_backends
        try:
            return iam_backends[self.account][self.partition].get_role(name_or_arn).arn
        except Exception:
            return self.arn("iam", f"role/{name_or_arn}", region=False)

    def schedule(self, name, group):
        return self.arn("scheduler", f"schedule/{group or 'default'}/{name}")

    def function(self, name):
        name = unquote(name)
        if name.startswith("arn:"):
            return name
        if ":" in name:  # account:function:name or name:qualifier
            return self.arn("lambda", f"function:{name.split(':function:')[-1]}")
        return self.arn("lambda", f"function:{name}")


def _one(action, resources, context=None):
    out = {"action": action, "resources": sorted(set(resources)) or ["*"]}
    if context:
        out["context"] = context
    return out


def _tags_context(tags):
    # aws:ResourceTag/<key> only: the simulator's data lacks secretsmanager:ResourceTag/<key>
    # (simulate.mjs reads a policy's condition on it as this one, the same tag lookup on AWS).
    return {f"aws:ResourceTag/{tag['Key']}": tag["Value"] for tag in tags or []}


def _path_after(path, marker):
    parts = path.split("/")
    return unquote(parts[parts.index(marker) + 1]) if marker in parts and parts.index(marker) + 1 < len(parts) else None


def authorizations(resp):
    """[{"action", "resources", "context"?}]: what IAM checks for this request."""
    service, api = service_of(resp), resp._get_action()
    if not api:
        return []
    p, n = params_of(resp), Names(resp)
    action = IAM_NAME.get(f"{service}:{api}", f"{service}:{api}")
    if service == "dynamodb":
        if api in ("TransactWriteItems", "TransactGetItems"):
            by_action = {}
            for item in p.get("TransactItems", []):
                for kind, body in item.items():
                    by_action.setdefault(f"dynamodb:{TRANSACT_ITEM[kind]}", []).append(n.table(body["TableName"]))
            return [_one(a, r) for a, r in sorted(by_action.items())]
        if api in ("BatchGetItem", "BatchWriteItem"):
            return [_one(action, [n.table(t) for t in p.get("RequestItems", {})])]
        if p.get("TableName"):
            arn = n.table(p["TableName"])
            return [_one(action, [arn + (f"/index/{p['IndexName']}" if p.get("IndexName") else "")])]
    elif service == "sqs":
        queue = p.get("QueueUrl") or p.get("QueueName")
        if queue:
            return [_one(action, [n.queue(queue)])]
    elif service == "secretsmanager":
        secret_id = p.get("SecretId")
        if secret_id:
            arn, secret = n.secret(secret_id)
            context = _tags_context(getattr(secret, "tags", None))
            context["secretsmanager:SecretId"] = arn
            return [_one(action, [arn], context)]
        if api == "CreateSecret" and p.get("Name"):
            # The ARN (with its random suffix) is known once the secret exists: see complete().
            return [_one(action, [n.arn("secretsmanager", f"secret:{p['Name']}")],
                         {f"aws:RequestTag/{t['Key']}": t["Value"] for t in p.get("Tags", []) or []})]
    elif service == "scheduler":
        name, path = None, urlparse(resp.uri).path
        if "/schedules/" in path:
            name = _path_after(path, "schedules")
            group = p.get("GroupName") or p.get("groupName")
            return [_one(action, [n.schedule(name, group)])]
        if "/schedule-groups/" in path:
            return [_one(action, [n.arn("scheduler", f"schedule-group/{_path_after(path, 'schedule-groups')}")])]
    elif service == "kms":
        if p.get("KeyId"):
            return [_one(action, [n.key(p["KeyId"])[0]])]
    elif service == "sts":
        if p.get("RoleArn"):
            return [_one(action, [p["RoleArn"]])]
    elif service == "iam":
        if p.get("RoleName"):
            return [_one(action, [n.role(p["RoleName"])])]
        if p.get("UserName"):
            return [_one(action, [n.arn("iam", f"user/{p['UserName']}", region=False)])]
        if p.get("PolicyArn"):
            return [_one(action, [p["PolicyArn"]])]
    elif service == "lambda":
        name = _path_after(urlparse(resp.uri).path, "functions")
        if name:
            return [_one(action, [n.function(name)])]
    elif service == "logs":
        group = p.get("logGroupName")
        if group:
            stream = p.get("logStreamName")
            rest = f"log-group:{group}:" + (f"log-stream:{stream}" if stream else "*")
            return [_one(action, [n.arn("logs", rest)])]
    return [_one(action, ["*"])]


def complete(resp, checks, body):
    """Fill in what only the answer knows (a new secret's ARN)."""
    if service_of(resp) == "secretsmanager" and resp._get_action() == "CreateSecret":
        try:
            arn = json.loads(body).get("ARN")
        except (ValueError, TypeError, AttributeError):
            arn = None
        if arn:
            for check in checks:
                check["resources"] = [arn]
    return checks


def implied(resp, checks):
    """The calls AWS makes on the caller's behalf (or as a role the caller passed)."""
    service, api, n, p = service_of(resp), resp._get_action(), Names(resp), params_of(resp)
    out = []
    if service == "secretsmanager":
        key_id, secret_arn = None, checks[0]["resources"][0] if checks else "*"
        if api == "CreateSecret" and p.get("Tags"):
            # "To add tags to the secret, you must also have secretsmanager:TagResource" (the
            # CreateSecret reference's required permissions).
            out.append(dict(_one("secretsmanager:TagResource", [secret_arn]), why="CreateSecret with tags"))
        if api == "CreateSecret":
            key_id = p.get("KmsKeyId")
        elif p.get("SecretId"):
            _, secret = n.secret(p["SecretId"])
            key_id = getattr(secret, "kms_key_id", None)
            if api == "UpdateSecret" and p.get("KmsKeyId"):
                key_id = p["KmsKeyId"]
        if key_id:
            key_arn, aws_managed = n.key(key_id)
            # An AWS managed key's policy lets every principal of the account use it through
            # Secrets Manager; a customer-managed key needs the caller's own permission.
            if not aws_managed:
                context = {"kms:ViaService": f"secretsmanager.{n.region}.amazonaws.com",
                           "kms:CallerAccount": n.account,
                           "kms:EncryptionContext:SecretARN": secret_arn}
                writes = api in ("CreateSecret", "PutSecretValue", "UpdateSecret") and (
                    "SecretString" in p or "SecretBinary" in p)
                reads = api == "GetSecretValue"
                if writes:
                    out.append(dict(_one("kms:GenerateDataKey", [key_arn], context), why=f"{api} encrypts the value"))
                if reads or writes:
                    out.append(dict(_one("kms:Decrypt", [key_arn], context), why=f"{api} decrypts the data key"))
    elif service == "scheduler" and api in ("CreateSchedule", "UpdateSchedule"):
        target = p.get("Target") or {}
        role = target.get("RoleArn")
        if role:
            out.append(dict(_one("iam:PassRole", [role], {"iam:PassedToService": "scheduler.amazonaws.com"}),
                            why=f"{api} passes the schedule's role"))
            target_service = (target.get("Arn") or "::").split(":")[2]
            if target_service in TARGET_ACTION:
                out.append(dict(_one(TARGET_ACTION[target_service], [target["Arn"]]), role_arn=role,
                                why="the scheduler invokes the target with the schedule's role"))
            dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
            if dead_letter:
                out.append(dict(_one("sqs:SendMessage", [dead_letter]), role_arn=role,
                                why="the scheduler sends what it gives up on to the dead-letter queue"))
    elif service == "sqs" and api in ("SendMessage", "SendMessageBatch", "ReceiveMessage"):
        queue = n.queue_object(p.get("QueueUrl", ""))
        key_id = getattr(queue, "kms_master_key_id", None)
        if key_id:
            key_arn, aws_managed = n.key(key_id)
            if not aws_managed:
                action = "kms:Decrypt" if api == "ReceiveMessage" else "kms:GenerateDataKey"
                out.append(dict(_one(action, [key_arn], {"kms:ViaService": f"sqs.{n.region}.amazonaws.com"}),
                                why=f"{api} on a queue under a customer-managed key"))
    return out

"""The AWS suite's emulator: moto's server with IAM enforced, recording every call.

    iam_emulator.py --calls FILE --admin FILE -H 127.0.0.1 -p PORT   (moto's Python; stack.sh runs it)

What moto 5.2.5 enforces in server mode, read from its source (core/authorization.py,
core/responses.py, iam/access_control.py), and what this adds:
- Every request of every service dispatched through BaseResponse.call_action (DynamoDB, SQS,
  Secrets Manager, EventBridge Scheduler, STS, IAM, KMS, Lambda, CloudWatch Logs all are) is
  checked once INITIAL_NO_AUTH_ACTION_COUNT requests have been served (the count is global to the
  server): the SigV4 signature is recomputed with the key's secret (an unknown key is refused with
  InvalidClientTokenId), then the identity's inline and attached policies are evaluated.
- The action checked is "<signing name>:<API operation>", so API operations whose IAM action has
  another name were wrongly denied: dynamodb:TransactWriteItems (IAM checks each item's
  PutItem/UpdateItem/DeleteItem/ConditionCheckItem), TransactGetItems (GetItem),
  sqs:*Batch, lambda:Invoke (InvokeFunction). Here those are checked under their IAM names.
- The resource checked is the request's ARN only for SQS (the queue), IAM (a role) and STS
  (AssumeRole's role); every other service is checked against the literal "*", which only a
  statement whose Resource is "*" (or a pattern like "arn:*" that matches the text "*") matches.
  Hence roles.py loads roles with Resource widened to "*": moto's verdict is then the action check.
- Conditions are evaluated only from the request's own query parameters (meant for
  sts:ExternalId); a statement with any other condition fails to match and counts as an explicit
  DENY. roles.py therefore drops conditions from the loaded copy. NotResource is ignored (the
  statement applies to every resource); Principal is checked only in trust policies, and only
  "AWS" principals ("Service" principals make moto fail), so roles.py trusts the harness's user.
- Nothing a service does on the caller's behalf is checked (Secrets Manager's kms:Decrypt,
  Scheduler's iam:PassRole), resource policies are ignored, and KMS key policies are checked only
  in the trivial case moto's kms.create_key documents. Here the implied calls made with the
  caller's permissions are checked too (as actions, like the rest): GetSecretValue on a secret
  under a customer-managed key is refused to a role with no kms:Decrypt, as on AWS.
- A GET or DELETE with query parameters (scheduler:GetSchedule?groupName=...) failed moto's
  signature check (it hashed the query as a body); fixed here. Refusals come in the service's
  error shape (AccessDeniedException as JSON for JSON protocols, moto gives IAM's XML).
So moto is the gate that makes a call the role lacks fail as it would (AccessDenied), and the
recorded calls, evaluated by simulate.mjs against the unmodified policies, are the precise check.

The recorder appends one JSON line per request to --calls:
    {"time", "access_key", "api": "dynamodb:TransactWriteItems", "status": 200, "error": null,
     "action", "resources", "context"?: the first of
     "actions": [{"action", "resources", "context"?}, ...]  (what IAM checks for the request),
     "implied": [{"action", "resources", "context"?, "role_arn"?, "why"}, ...]}
(calls.py says how names are resolved and what is implied). Requests with no action (moto's own
/moto-api) are not recorded.

At start an administrator user is made in the emulator's IAM (policy: every action on "*") and its
key is written to --admin as JSON, so the harness sets up tables, queues and roles authenticated;
INITIAL_NO_AUTH_ACTION_COUNT is 0 (nothing is unauthenticated, so no count can run out under
parallel scenarios). A /moto-api/reset would remove that user: do not call it here.
"""
import argparse
import json
import os
import sys
import threading
import time

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = os.environ.get("TIDEMARK_IAM_NO_AUTH_COUNT", "0")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import moto_server  # noqa: E402,F401  (DynamoDB's per-request atomicity)
import calls  # noqa: E402
from moto import server  # noqa: E402
from moto.core.responses import BaseResponse  # noqa: E402
from moto.iam.access_control import IAMRequest, IAMRequestBase  # noqa: E402

# moto's IAM looks a role up by ARN by iterating the live dict of roles; with stacks creating
# their roles while others' requests are authorized (an AssumeRole, an implied iam:PassRole) that
# raised "dictionary changed size during iteration" (a 500). A copy is taken at once instead.
from moto.iam.models import IAMBackend  # noqa: E402

IAMBackend.get_roles = lambda self: list(self.roles.values())

ACCOUNT = "123456789012"
ADMIN_USER = "tidemark-harness"
_write = threading.Lock()
_calls_path = None
_call_action = BaseResponse.call_action
_authorize = BaseResponse._authenticate_and_authorize_normal_action
_aws_request = IAMRequestBase._create_aws_request
# moto's IAM errors are the IAM query protocol's XML; JSON-protocol SDKs want their own shape.
JSON_ERROR = {"AccessDenied": "AccessDeniedException", "InvalidClientTokenId": "UnrecognizedClientException",
              "SignatureDoesNotMatch": "InvalidSignatureException"}


def _checked_as(action):
    """moto's IAMRequest, checking `action` ("service:Name") instead of the request's own."""
    class Request(IAMRequest):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._action = action
    return Request


def authorize(self, resource="*"):
    """moto's check, under each IAM action the request needs when that is not the API's name,
    then the implied calls made with the caller's permissions (kms:Decrypt through Secrets
    Manager, iam:PassRole), as AWS refuses the request when one of those is denied."""
    checks = calls.authorizations(self)
    self._tidemark_checks = checks
    actions = sorted({c["action"] for c in checks})
    if actions == [f"{calls.service_of(self)}:{self._get_action()}"] or not checks:
        _authorize(self, resource)
    else:
        for action in actions:
            self._authenticate_and_authorize_action(_checked_as(action), resource)
    for action in sorted({i["action"] for i in calls.implied(self, checks) if "role_arn" not in i}):
        self._authenticate_and_authorize_action(_checked_as(action), "*")


def aws_request(self):
    """The request as signed. moto signs a bodiless GET/DELETE over its query parameters as if
    they were a form body, so GetSchedule?groupName=... never matched: only a form's body is."""
    request = _aws_request(self)
    if not self._body and "x-www-form-urlencoded" not in self._headers.get("Content-Type", ""):
        request.data = b""
    return request


def json_error(self, status, headers, body):
    """An IAM refusal in the shape the service's SDK parses (awsJson: __type; restJson: header)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    if status != 403 or not text.startswith("<?xml") or calls.service_of(self) in ("iam", "sts"):
        return status, headers, body, None
    code = text.split("<Code>", 1)[-1].split("</Code>", 1)[0]
    message = text.split("<Message>", 1)[-1].split("</Message>", 1)[0] if "<Message>" in text else code
    code = JSON_ERROR.get(code, code)
    headers = dict(headers, **{"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code})
    if self.headers.get("X-Amz-Target"):
        return 400, headers, json.dumps({"__type": code, "message": message}), code
    return 403, headers, json.dumps({"message": message}), code


def call_action(self):
    status, body, error = 500, "", None
    try:
        status, headers, body = _call_action(self)
        status, headers, body, error = json_error(self, status, headers, body)
        return status, headers, body
    finally:
        try:
            record(self, status, body, error)
        except Exception as e:  # a recorder fault must show, not hide the call
            print(f"iam_emulator: could not record a call: {e!r}", file=sys.stderr)


def record(resp, status, body, error):
    api = resp._get_action()
    if not api or _calls_path is None:
        return
    checks = getattr(resp, "_tidemark_checks", None) or calls.authorizations(resp)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    checks = calls.complete(resp, checks, body)
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "access_key": calls.access_key_of(resp), "api": f"{calls.service_of(resp)}:{api}",
            "status": int(status), "error": error, **checks[0], "actions": checks, "implied": calls.implied(resp, checks)}
    text = json.dumps(line, sort_keys=True) + "\n"
    with _write:
        with open(_calls_path, "a") as f:
            f.write(text)


def make_admin(path):
    """The harness's administrator, made in-process before the server answers anything."""
    from moto.iam.models import iam_backends
    iam = iam_backends[ACCOUNT]["aws"]
    iam.create_user("us-east-1", ADMIN_USER, path="/", tags=[])
    iam.put_user_policy(ADMIN_USER, "everything", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(ADMIN_USER)
    creds = {"user_arn": f"arn:aws:iam::{ACCOUNT}:user/{ADMIN_USER}",
             "access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(creds, f)
    os.replace(tmp, path)


def main():
    global _calls_path
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--calls", required=True)
    parser.add_argument("--admin", required=True)
    ours, rest = parser.parse_known_args()
    _calls_path = ours.calls
    BaseResponse.call_action = call_action
    BaseResponse._authenticate_and_authorize_normal_action = authorize
    IAMRequestBase._create_aws_request = aws_request
    make_admin(ours.admin)
    sys.argv = [sys.argv[0]] + rest
    server.main()


if __name__ == "__main__":
    main()

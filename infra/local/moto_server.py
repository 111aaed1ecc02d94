"""moto's server, with DynamoDB's write atomicity.

DynamoDB applies each request to an item atomically: twenty concurrent `UpdateItem ... ADD`s on
one counter add twenty. moto's threaded server does not (its models take no lock), so the state
store's contract tests of concurrent counters lost updates now and then on a loaded machine.
Here DynamoDB requests (the `X-Amz-Target: DynamoDB_...` JSON protocol) are served one at a time;
every other service stays concurrent (an SQS long poll must not hold anything up).

Usage: the same as moto_server (stack.sh runs it with moto's own Python).
"""
import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_dynamodb = threading.Lock()
_serve = DomainDispatcherApplication.__call__


def _call(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with _dynamodb:
            # The whole answer is made under the lock, not only its start.
            return list(_serve(self, environ, start_response))
    return _serve(self, environ, start_response)


DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    server.main()

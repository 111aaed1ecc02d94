#!/usr/bin/env python3
"""The demo's API client (standard library only): one task per policy, each created, prechecked,
started (with its schedule preview) and run now through `tidemark serve`'s HTTP API."""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = sys.argv[1]


def call(method, path, body=None, expect=(200, 201, 202)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in expect:
        sys.exit(f"{method} {path} answered {status}: {text}")
    return status, (json.loads(text) if text else None)


def wait_for_server():
    for _ in range(300):
        try:
            call("GET", "/health")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    sys.exit("tidemark serve did not answer within 30 s (see its log)")


def endpoint(port_var):
    return {"host": "127.0.0.1", "port": int(os.environ[port_var]),
            "user": os.environ["TIDEMARK_DB_USER"], "password": os.environ["TIDEMARK_DB_PASSWORD"]}


def spec(name, policy, objects):
    today = time.strftime("%Y-%m-%d", time.gmtime())
    next_year = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 300 * 86400))
    return {
        "name": name,
        "source": endpoint("TIDEMARK_SOURCE_PORT"),
        "destination": endpoint("TIDEMARK_DEST_PORT"),
        "policy": policy,
        "schedule": {"cycle": "week", "days": ["mon", "thu"], "at": "02:30",
                     "time_zone": "Asia/Shanghai", "start": today, "end": next_year},
        "objects": objects,
        "channel": {"workers": 4, "chunk_mb": 1},
    }


def demo(name, policy, objects):
    print(f"\n--- {name}: policy {policy['mode']}")
    _, task = call("POST", "/tasks", spec(name, policy, objects))
    task_id = task["id"]
    assert os.environ["TIDEMARK_DB_PASSWORD"] not in json.dumps(task), "the API echoed a password"
    print(f"created task {task_id} ({task['status']})")
    call("POST", f"/tasks/{task_id}/precheck")
    for _ in range(600):
        status, report = call("GET", f"/tasks/{task_id}/precheck")
        if status == 200:
            break
        time.sleep(0.1)
    checks = (report.get("report") or report).get("checks", [])
    failed = [c["id"] for c in checks if c["status"] == "fail"]
    warned = [c["id"] for c in checks if c["status"] == "warn"]
    print(f"precheck: {len(checks)} checks, failed {failed or 'none'}, warned {warned or 'none'}")
    if failed:
        for c in checks:
            if c["status"] == "fail":
                print(f"  FAIL {c['id']}: {c['message']} -> {c.get('remedy')}")
        sys.exit("the precheck failed")
    _, task = call("POST", f"/tasks/{task_id}/start")
    _, preview = call("GET", f"/tasks/{task_id}/schedule?count=3")
    times = preview.get("times", preview) if isinstance(preview, dict) else preview
    print(f"started ({task['status']}); next cycles: {', '.join(map(str, times))}")
    _, run = call("POST", f"/tasks/{task_id}/runs")
    run_id = urllib.parse.quote(run["id"], safe="")
    for _ in range(1200):
        _, run = call("GET", f"/tasks/{task_id}/runs/{run_id}")
        if run["status"] not in ("pending", "running"):
            break
        time.sleep(0.1)
    print(f"run {run['id']}: {run['status']}" + (f" — {run['error']}" if run.get("error") else ""))
    for t in run.get("tables", []):
        verified = "verified" if t.get("verified") == t.get("chunks_done") and t.get("chunks_done") else "not verified"
        print(f"  {t['table']:<28} {t['rows']:>8} rows {t['bytes'] / 1e6:>7.2f} MB "
              f"{t['chunks_done']:>3} chunks  {verified}")
    if run["status"] != "succeeded":
        sys.exit(f"the {name} run did not succeed")
    call("POST", f"/tasks/{task_id}/stop")


wait_for_server()
whole_shop = [{"database": "demo_shop", "rename": "demo_dw_replica"}]
demo("shop-replicas", {"mode": "multi_replica", "keep_replicas": 2}, whole_shop)
demo("shop-resync", {"mode": "resync"}, [{"database": "demo_shop", "rename": "demo_dw_resync"}])
demo("shop-incremental", {"mode": "incremental", "lag_seconds": 5, "lookback_seconds": 60},
     [{"database": "demo_shop", "rename": "demo_dw_incremental", "tables": [
         {"name": "customers", "timestamp_column": "updated_at"},
         {"name": "orders", "timestamp_column": "updated_at"},
         {"name": "audit", "timestamp_column": "updated_at"}]}])
print("\nall three policies ran; the copies were verified chunk by chunk")

#!/usr/bin/env python3
"""The soak (standard library only; driven by infra/bench/soak.sh): until the time is up, loops
over fresh tasks, each under a random policy, killed by a random crash point
(TIDEMARK_CRASH_AT) or a SIGKILL at a random moment, restarted on the same data directory, and
verified against the source. Prints the figures at the end; exits 1 if a row was lost, doubled
or changed, or a run did not finish.

    soak.py --tidemark BINARY --minutes N [--seed S] [--work DIR]
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

POINTS = {
    "multi_replica": ["schema.pre_data", "schema.planned", "schema.steps_written",
                      "chunk.mid_load", "chunk.before_commit", "chunk.committed",
                      "chunk.recorded", "finalize.claimed", "replica.post_data",
                      "finalize.before_done"],
    "resync": ["schema.pre_data", "schema.planned", "schema.steps_written", "chunk.mid_load",
               "chunk.before_commit", "chunk.committed", "chunk.recorded",
               "finalize.claimed", "resync.shadow_indexes", "resync.swapped",
               "resync.retired_dropped", "finalize.before_done"],
    "incremental": ["schema.pre_data", "incremental.triggers_set_aside", "schema.planned",
                    "schema.steps_written", "chunk.mid_load", "chunk.before_commit",
                    "chunk.committed", "chunk.recorded", "finalize.claimed",
                    "incremental.triggers_restored",
                    "incremental.data_committed", "finalize.before_done"],
}
CHUNK_POINTS = {"chunk.mid_load", "chunk.before_commit", "chunk.committed", "chunk.recorded"}

TABLES = {
    "orders": ("CREATE TABLE `{db}`.orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, "
               "note VARCHAR(400) NULL, amount DECIMAL(12,2), updated_at DATETIME(6) NOT NULL, "
               "KEY ix_customer (customer))",
               "INSERT INTO `{db}`.orders SELECT seq, seq % 97, IF(seq % 7 = 0, NULL, "
               "REPEAT(CHAR(65 + seq % 26), 150 + seq % 200)), seq / 7, "
               "TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{n}",
               "id, customer, note, amount, updated_at"),
    "customers": ("CREATE TABLE `{db}`.customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, "
                  "email VARCHAR(80) NULL, visits INT NOT NULL DEFAULT 0, "
                  "updated_at DATETIME(6) NOT NULL)",
                  "INSERT INTO `{db}`.customers SELECT seq, CONCAT('c', seq), IF(seq % 3 = 0, "
                  "NULL, CONCAT('c', seq, '@x.test')), seq % 10, "
                  "TIMESTAMP'2026-01-01 00:00:00.5' + INTERVAL seq MINUTE FROM seq_1_to_3000",
                  "id, name, email, visits, updated_at"),
    "events": ("CREATE TABLE `{db}`.events (id BIGINT PRIMARY KEY, kind VARCHAR(20) NULL, "
               "payload VARCHAR(600) NOT NULL, updated_at DATETIME(6) NOT NULL)",
               "INSERT INTO `{db}`.events SELECT seq, ELT(1 + seq % 3, 'a', NULL, 'c'), "
               "REPEAT('e', 300 + seq % 200), "
               "TIMESTAMP'2026-01-02 00:00:00.25' + INTERVAL seq SECOND FROM seq_1_to_{n}",
               "id, kind, payload, updated_at"),
}
TRIGGER = ("CREATE TRIGGER `{db}`.customers_visit BEFORE INSERT ON `{db}`.customers "
           "FOR EACH ROW SET NEW.visits = NEW.visits + 1")


def sql(port, statements, fetch=False):
    """Runs statements with the mariadb client over TCP on loopback; the rows when fetch."""
    env = dict(os.environ, MYSQL_PWD=os.environ["TIDEMARK_DB_PASSWORD"])
    out = subprocess.run(
        ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{port}",
         f"-u{os.environ['TIDEMARK_DB_USER']}", "-N", "-B", "--protocol=TCP"],
        input=";\n".join(statements) + ";\n", env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"mariadb on port {port} failed: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines()] if fetch else None


SRC = int(os.environ.get("TIDEMARK_SOURCE_PORT", "23061"))
DST = int(os.environ.get("TIDEMARK_DEST_PORT", "23062"))


class Serve:
    def __init__(self, binary, data_dir, crash=None):
        env = dict(os.environ, RUST_LOG="info")
        env.pop("TIDEMARK_CRASH_AT", None)
        if crash:
            env["TIDEMARK_CRASH_AT"] = crash
        os.makedirs(data_dir, exist_ok=True)
        self.log_path = os.path.join(data_dir, "serve.log")
        self.log = open(self.log_path, "a")
        self.mark = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
             "--allow-hosts", "127.0.0.1"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        # soak.sh stops this pid if the soak itself is interrupted.
        with open(os.path.join(os.path.dirname(data_dir), "serve.pid"), "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.time() + 20
        while time.time() < deadline:
            text = self.text()
            at = text.find("listening on http://")
            if at >= 0:
                self.base = text[at + len("listening on "):].split()[0]
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"tidemark serve exited at start:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("tidemark serve did not listen in 20 s")

    def text(self):
        with open(self.log_path, errors="replace") as f:
            f.seek(self.mark)
            return f.read()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait_exit(40) is None:
                self.kill9()
        self.log.close()


def endpoint(port):
    return {"host": "127.0.0.1", "port": port, "user": os.environ["TIDEMARK_DB_USER"],
            "password": os.environ["TIDEMARK_DB_PASSWORD"]}


def setup(db, target, mode, rng):
    orders, events = rng.randint(6000, 14000), rng.randint(3000, 8000)
    stmts = [f"CREATE DATABASE `{db}`", f"USE `{db}`"]
    for name, (ddl, fill, _) in TABLES.items():
        stmts += [ddl.format(db=db), fill.format(db=db, n=orders if name == "orders" else events)]
    stmts.append(TRIGGER.format(db=db))
    if mode != "incremental":
        stmts += [f"CREATE TABLE `{db}`.notes (body VARCHAR(50) NULL)",
                  f"INSERT INTO `{db}`.notes VALUES ('a'), ('a'), (NULL), (NULL), ('b')"]
    sql(SRC, stmts)
    if mode != "multi_replica":
        old = [f"CREATE DATABASE `{target}`", f"USE `{target}`"]
        old += [ddl.format(db=target) for ddl, _, _ in TABLES.values()]
        old += [f"INSERT INTO `{target}`.orders SELECT seq, 1, 'stale', 0, "
                "'2020-01-01' FROM seq_1_to_50",
                f"INSERT INTO `{target}`.orders SELECT seq, 1, 'stale', 0, "
                "'2020-01-01' FROM seq_90000_to_90050",
                TRIGGER.format(db=target)]
        if mode == "resync":
            old += [f"CREATE TABLE `{target}`.notes (body VARCHAR(50) NULL)",
                    f"INSERT INTO `{target}`.notes VALUES ('stale')"]
        sql(DST, old)


def table_facts(port, db, table, columns):
    """count, distinct keys, an ordered NULL-safe hash of every row."""
    cols = [c.strip() for c in columns.split(",")]
    row = ", ".join(f"IFNULL(HEX(`{c}`), 'N')" for c in cols)
    key = "id" if "id" in cols else ", ".join(f"`{c}`" for c in cols)
    rows = sql(port, ["SET SESSION group_concat_max_len = 1073741824",
                      f"SELECT COUNT(*), COUNT(DISTINCT {key}), "
                      f"MD5(GROUP_CONCAT(CONCAT_WS(',', {row}) ORDER BY {row} SEPARATOR ';')) "
                      f"FROM `{db}`.`{table}`"], fetch=True)
    count, distinct, digest = rows[-1]
    return int(count), int(distinct), digest


def verify(run, db, dest_db, mode, task, data_dir, target):
    """Problems (empty when the copy is exact) and the row figures."""
    problems, lost, dup = [], 0, 0
    tables = dict((n, c) for n, (_, _, c) in TABLES.items())
    if mode != "incremental":
        tables["notes"] = "body"
    for table, cols in tables.items():
        s = table_facts(SRC, db, table, cols)
        try:
            d = table_facts(DST, dest_db, table, cols)
        except RuntimeError as e:
            problems.append(f"{dest_db}.{table}: {e}")
            lost += s[0]
            continue
        if table == "notes":
            lost += max(0, s[0] - d[0])
            dup += max(0, d[0] - s[0])
        else:
            lost += max(0, s[1] - d[1])
            dup += d[0] - d[1]
        if s != d:
            problems.append(f"{dest_db}.{table}: source {s[:2]} destination {d[:2]} differ")
    working = sql(DST, [f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                        f"TABLE_SCHEMA = '{dest_db}' AND TABLE_NAME LIKE '\\_tm\\_%'"], fetch=True)
    if working:
        problems.append(f"working tables left: {working}")
    trig = ("SELECT CONCAT_WS('|', TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT) FROM "
            "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}' ORDER BY 1")
    if sql(SRC, [trig.format(db)], fetch=True) != sql(DST, [trig.format(dest_db)], fetch=True):
        problems.append("the triggers differ")
    if mode == "multi_replica":
        made = sql(DST, [f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE "
                         f"SCHEMA_NAME LIKE '{target}\\_%'"], fetch=True)
        if made != [[dest_db]]:
            problems.append(f"replica databases {made}, expected {dest_db}")
    if mode == "incremental":
        state = sqlite3.connect(os.path.join(data_dir, "state.sqlite"))
        for table in tables:
            got = state.execute("SELECT body FROM items WHERE pk = ? AND sk = ?",
                                (f"TASK#{task}", f"MARK#{db}.{table}")).fetchone()
            mark = json.loads(got[0])["value"] if got else None
            same = sql(SRC, [f"SELECT CAST('{mark}' AS DATETIME(6)) = MAX(updated_at) "
                             f"FROM `{db}`.`{table}`"], fetch=True) if mark else [["0"]]
            if same != [["1"]]:
                problems.append(f"watermark of {table} is {mark}, not the source's maximum")
        state.close()
    if run.get("chunks_done") != run.get("chunks_total"):
        problems.append(f"chunks_done {run.get('chunks_done')} of {run.get('chunks_total')}")
    return problems, lost, dup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tidemark", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--work", default="/tmp/tidemark-soak")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 2**32
    rng = random.Random(seed)
    print(f"soak: seed {seed}, {args.minutes} minutes, work in {args.work}", flush=True)
    data_dir = os.path.join(args.work, "data")
    os.makedirs(args.work, exist_ok=True)
    deadline = time.time() + args.minutes * 60
    fig = dict(runs=0, succeeded=0, kills_survived=0, faults_injected=0, crash_points=0,
               sigkills=0, not_reached=0, rows_copied=0, rows_lost=0, duplicates=0,
               failed_checks=0)
    failures = []
    i = 0
    while time.time() < deadline:
        i += 1
        mode = rng.choice(sorted(POINTS))
        db = f"soak_{seed % 100000}_{i}"
        target = f"{db}_dw"
        setup(db, target, mode, rng)
        use_point = rng.random() < 0.6
        point = None
        if use_point:
            point = rng.choice(POINTS[mode])
            if point in CHUNK_POINTS:
                point += f"#{rng.randint(1, 4)}"
        delay = rng.uniform(0.05, 1.2)
        objects = [{"database": db, "rename": target}]
        policy = {"mode": mode}
        if mode == "incremental":
            policy.update(lag_seconds=0, lookback_seconds=0)
            objects[0]["tables"] = [{"name": t, "timestamp_column": "updated_at"} for t in TABLES]
        if mode == "multi_replica":
            policy["keep_replicas"] = 2
        spec = {"name": f"soak-{i}", "source": endpoint(SRC), "destination": endpoint(DST),
                "policy": policy, "failure_policy": "stop", "objects": objects,
                "schedule": {"cycle": "day", "at": "02:30", "time_zone": "UTC",
                             "start": "2026-12-01", "end": "2027-11-30"},
                "channel": {"workers": rng.choice([1, 2, 3]), "chunk_mb": 1}}
        serve = Serve(args.tidemark, data_dir, point)
        fault = point or f"SIGKILL after {delay:.2f} s"
        try:
            status, task = serve.call("POST", "/tasks", spec)
            assert status == 201, task
            tid = task["id"]
            serve.call("POST", f"/tasks/{tid}/precheck", {})
            while serve.call("GET", f"/tasks/{tid}/precheck")[1].get("state") == "running":
                time.sleep(0.1)
            status, run = serve.call("POST", f"/tasks/{tid}/runs", {})
            assert status == 202, run
            rid = run["id"]
            fig["runs"] += 1
            injected = False
            if point:
                # The process dies at the point, or the run ends without reaching it.
                started = time.time()
                while serve.proc.poll() is None and time.time() - started < 120:
                    try:
                        _, now = serve.call("GET", f"/tasks/{tid}/runs/{rid}")
                    except OSError:  # dying at the point: the answer was cut
                        time.sleep(0.05)
                        continue
                    if now.get("status") not in ("pending", "running"):
                        break
                    time.sleep(0.05)
                serve.wait_exit(1)
                injected = serve.proc.poll() is not None and "crash point" in serve.text()
                fig["crash_points" if injected else "not_reached"] += 1
            else:
                time.sleep(delay)
                _, before = serve.call("GET", f"/tasks/{tid}/runs/{rid}")
                injected = before.get("status") in ("pending", "running")
                if injected:
                    serve.kill9()
                    fig["sigkills"] += 1
                else:
                    fig["not_reached"] += 1
            if injected:
                fig["faults_injected"] += 1
                serve.stop()
                serve = Serve(args.tidemark, data_dir)
            started = time.time()
            while True:
                _, run = serve.call("GET", f"/tasks/{tid}/runs/{rid}")
                if run.get("status") not in ("pending", "running"):
                    break
                if time.time() - started > 180:
                    raise RuntimeError(f"run {rid} did not finish in 3 minutes")
                time.sleep(0.1)
            if run["status"] != "succeeded":
                raise RuntimeError(f"run {rid} {run['status']}: {run.get('error')}")
            fig["succeeded"] += 1
            if injected:
                fig["kills_survived"] += 1
            fig["rows_copied"] += sum(t.get("rows", 0) for t in run.get("tables", []))
            dest_db = target
            if mode == "multi_replica":
                t = time.strptime(rid, "%Y-%m-%dT%H:%M:%SZ")
                dest_db = f"{target}_{time.strftime('%Y%m%d_%H_%M_%S', t)}"
            problems, lost, dup = verify(run, db, dest_db, mode, tid, data_dir, target)
            fig["rows_lost"] += lost
            fig["duplicates"] += dup
            if problems:
                fig["failed_checks"] += 1
                failures.append(f"#{i} {mode} {fault}: {problems}")
            print(f"soak: #{i} {mode:<13} {fault:<36} -> {run['status']}"
                  f"{'' if not problems else ' PROBLEMS: ' + '; '.join(problems)}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a figure, and the soak goes on
            fig["failed_checks"] += 1
            failures.append(f"#{i} {mode} {fault}: {e}")
            print(f"soak: #{i} {mode} {fault} -> FAILED: {e!r}\n{serve.text()[-3000:]}", flush=True)
        finally:
            serve.stop()
            pattern = target.replace("_", "\\_")
            extra = sql(DST, [f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                              f"WHERE SCHEMA_NAME LIKE '{pattern}%'"], fetch=True)
            sql(SRC, [f"DROP DATABASE IF EXISTS `{db}`"])
            sql(DST, [f"DROP DATABASE IF EXISTS `{n[0]}`" for n in extra] or ["DO 0"])
    print("\nsoak figures (seed %d):" % seed)
    for k in ["runs", "succeeded", "faults_injected", "crash_points", "sigkills",
              "kills_survived", "not_reached", "rows_copied", "rows_lost", "duplicates",
              "failed_checks"]:
        print(f"  {k:<16} {fig[k]}")
    for f in failures:
        print(f"  failure: {f}")
    bad = fig["rows_lost"] or fig["duplicates"] or fig["failed_checks"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

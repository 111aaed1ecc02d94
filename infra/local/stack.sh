#!/usr/bin/env bash
# The local stack: two MariaDB servers (source, destination), the AWS emulator (moto's server) and
# the AWS suite's IAM-enforcing emulator (a second moto server, infra/local/aws/iam_emulator.py),
# all on 127.0.0.1, state under $TIDEMARK_STACK_DIR (default .stack/ in the repository).
#
#   stack.sh start [--fresh]
#                      start what is not running (installs nothing: run install.sh first);
#                      --fresh: both servers start from empty datadirs (the test command uses it)
#   stack.sh stop      stop everything it and the test harness started
#   stack.sh status    one line a component; exit 3 when something is down
#   stack.sh env       print the environment for clients (also written to $STACK_DIR/env)
#
# Ports: TIDEMARK_SOURCE_PORT (23061), TIDEMARK_DEST_PORT (23062), TIDEMARK_EMULATOR_PORT (24566),
# TIDEMARK_IAM_EMULATOR_PORT (24567). The defaults are below Linux's ephemeral range
# (32768-60999), where a client socket of the tests could already hold the port when a server starts.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
STACK_DIR=$TIDEMARK_STACK_DIR
TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
SOURCE_PORT=${TIDEMARK_SOURCE_PORT:-23061}
DEST_PORT=${TIDEMARK_DEST_PORT:-23062}
EMULATOR_PORT=${TIDEMARK_EMULATOR_PORT:-24566}
IAM_EMULATOR_PORT=${TIDEMARK_IAM_EMULATOR_PORT:-24567}
instance=$here/mariadb-instance.sh

log() { printf 'stack: %s\n' "$*" >&2; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_env() {
  cat >"$STACK_DIR/env" <<ENV
export TIDEMARK_STACK_DIR='$STACK_DIR'
export TIDEMARK_INFRA_DIR='$here'
export TIDEMARK_SOURCE_PORT='$SOURCE_PORT'
export TIDEMARK_DEST_PORT='$DEST_PORT'
export TIDEMARK_EMULATOR_PORT='$EMULATOR_PORT'
export TIDEMARK_DB_USER='${TIDEMARK_DB_USER:-tidemark}'
export TIDEMARK_DB_PASSWORD='${TIDEMARK_DB_PASSWORD:-tidemark-local-only}'
export AWS_ENDPOINT_URL='http://127.0.0.1:$EMULATOR_PORT'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_REGION='us-east-1'
export AWS_EC2_METADATA_DISABLED='true'
export TIDEMARK_IAM_EMULATOR_PORT='$IAM_EMULATOR_PORT'
export TIDEMARK_IAM_ENDPOINT_URL='http://127.0.0.1:$IAM_EMULATOR_PORT'
export TIDEMARK_IAM_CALLS='$STACK_DIR/iam-emulator/calls.jsonl'
ENV
  # The IAM emulator's administrator (iam_emulator.py makes it at start): the harness's setup key.
  local admin=$STACK_DIR/iam-emulator/admin.json
  if [[ -f $admin ]]; then
    "$TOOLS_DIR/moto/bin/python3" - "$admin" >>"$STACK_DIR/env" <<'PY'
import json, shlex, sys
admin = json.load(open(sys.argv[1]))
print(f"export TIDEMARK_IAM_ACCESS_KEY_ID={shlex.quote(admin['access_key_id'])}")
print(f"export TIDEMARK_IAM_SECRET_ACCESS_KEY={shlex.quote(admin['secret_access_key'])}")
print(f"export TIDEMARK_IAM_ADMIN_ARN={shlex.quote(admin['user_arn'])}")
PY
  fi
}

start_moto() { # name port command...: a moto server in $STACK_DIR/name, listening on port
  local name=$1 port=$2; shift 2
  local dir=$STACK_DIR/$name
  mkdir -p "$dir"
  if alive "$dir/pid" && port_open "$port"; then return 0; fi
  [[ -x $TOOLS_DIR/moto/bin/moto_server ]] || { log "moto is not installed: run infra/local/install.sh"; exit 1; }
  if alive "$dir/pid"; then kill "$(cat "$dir/pid")" 2>/dev/null || true; fi
  if port_open "$port"; then
    log "port $port is taken by another program: set the $name's port (see stack.sh's header)"; exit 1
  fi
  setsid "$@" -H 127.0.0.1 -p "$port" </dev/null >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/pid"
  local i
  for i in $(seq 1 150); do
    port_open "$port" && return 0
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -n 20 "$dir/moto.log" >&2; log "$name exited"; exit 1; }
    sleep 0.2
  done
  log "$name did not listen on $port within 30 s (see $dir/moto.log)"; exit 1
}

start_emulator() {
  # moto's server with DynamoDB's per-request atomicity (see moto_server.py).
  start_moto emulator "$EMULATOR_PORT" "$TOOLS_DIR/moto/bin/python3" "$here/moto_server.py"
}

start_iam_emulator() {
  # IAM enforced from the first request, every call recorded (see aws/iam_emulator.py). A new
  # server starts a new calls file: the old one's access keys mean nothing to it.
  local dir=$STACK_DIR/iam-emulator
  if ! { alive "$dir/pid" && port_open "$IAM_EMULATOR_PORT"; }; then
    mkdir -p "$dir"
    rm -f "$dir/admin.json"
    : >"$dir/calls.jsonl"
  fi
  start_moto iam-emulator "$IAM_EMULATOR_PORT" "$TOOLS_DIR/moto/bin/python3" "$here/aws/iam_emulator.py" \
    --calls "$dir/calls.jsonl" --admin "$dir/admin.json"
}

stop_moto() { # name
  local pidf=$STACK_DIR/$1/pid i
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  local pid; pid=$(cat "$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidf"
}

moto_status() { # name port label
  if alive "$STACK_DIR/$1/pid" && port_open "$2"; then
    printf '%-13srunning  port %s  pid %s\n' "$3" "$2" "$(cat "$STACK_DIR/$1/pid")"
  else
    printf '%-13sstopped  port %s\n' "$3" "$2"; return 3
  fi
}

case ${1:-} in
  start)
    mkdir -p "$STACK_DIR"
    if [[ ${2:-} == --fresh ]]; then
      for role in source destination; do
        "$instance" stop "$STACK_DIR/$role"
        rm -rf "$STACK_DIR/$role/data"
      done
    fi
    "$instance" start "$STACK_DIR/source" "$SOURCE_PORT"
    "$instance" start "$STACK_DIR/destination" "$DEST_PORT"
    start_emulator
    start_iam_emulator
    write_env
    log "up: source 127.0.0.1:$SOURCE_PORT, destination 127.0.0.1:$DEST_PORT, emulator http://127.0.0.1:$EMULATOR_PORT, IAM emulator http://127.0.0.1:$IAM_EMULATOR_PORT"
    ;;
  stop)
    # The harness's private servers first (tests that changed server-wide settings).
    if [[ -d $STACK_DIR/private ]]; then
      for d in "$STACK_DIR"/private/*/; do
        [[ -d $d ]] && "$instance" stop "${d%/}"
      done
      rm -rf "$STACK_DIR/private"
    fi
    "$instance" stop "$STACK_DIR/source"
    "$instance" stop "$STACK_DIR/destination"
    stop_moto emulator
    stop_moto iam-emulator
    log "stopped"
    ;;
  status)
    rc=0
    printf 'source       '; "$instance" status "$STACK_DIR/source" || rc=3
    printf 'destination  '; "$instance" status "$STACK_DIR/destination" || rc=3
    moto_status emulator "$EMULATOR_PORT" emulator || rc=3
    moto_status iam-emulator "$IAM_EMULATOR_PORT" iam-emulator || rc=3
    exit $rc
    ;;
  env) mkdir -p "$STACK_DIR"; write_env; cat "$STACK_DIR/env" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac

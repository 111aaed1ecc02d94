#!/usr/bin/env bash
# The local stack: two MariaDB servers (source, destination) and the AWS emulator (moto's server),
# all on 127.0.0.1, state under $TIDEMARK_STACK_DIR (default .stack/ in the repository).
#
#   stack.sh start [--fresh]
#                      start what is not running (installs nothing: run install.sh first);
#                      --fresh: both servers start from empty datadirs (the test command uses it)
#   stack.sh stop      stop everything it and the test harness started
#   stack.sh status    one line a component; exit 3 when something is down
#   stack.sh env       print the environment for clients (also written to $STACK_DIR/env)
#
# Ports: TIDEMARK_SOURCE_PORT (33061), TIDEMARK_DEST_PORT (33062), TIDEMARK_EMULATOR_PORT (45660).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
STACK_DIR=$TIDEMARK_STACK_DIR
TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
SOURCE_PORT=${TIDEMARK_SOURCE_PORT:-33061}
DEST_PORT=${TIDEMARK_DEST_PORT:-33062}
EMULATOR_PORT=${TIDEMARK_EMULATOR_PORT:-45660}
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
ENV
}

start_emulator() {
  local dir=$STACK_DIR/emulator
  mkdir -p "$dir"
  if alive "$dir/pid" && port_open "$EMULATOR_PORT"; then return 0; fi
  [[ -x $TOOLS_DIR/moto/bin/moto_server ]] || { log "moto is not installed: run infra/local/install.sh"; exit 1; }
  if alive "$dir/pid"; then kill "$(cat "$dir/pid")" 2>/dev/null || true; fi
  if port_open "$EMULATOR_PORT"; then
    log "port $EMULATOR_PORT is taken by another program: set TIDEMARK_EMULATOR_PORT"; exit 1
  fi
  # moto's server with DynamoDB's per-request atomicity (see moto_server.py).
  setsid "$TOOLS_DIR/moto/bin/python3" "$here/moto_server.py" -H 127.0.0.1 -p "$EMULATOR_PORT" \
    </dev/null >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/pid"
  local i
  for i in $(seq 1 150); do
    port_open "$EMULATOR_PORT" && return 0
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -n 20 "$dir/moto.log" >&2; log "moto_server exited"; exit 1; }
    sleep 0.2
  done
  log "moto_server did not listen on $EMULATOR_PORT within 30 s (see $dir/moto.log)"; exit 1
}

stop_emulator() {
  local pidf=$STACK_DIR/emulator/pid i
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  local pid; pid=$(cat "$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidf"
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
    write_env
    log "up: source 127.0.0.1:$SOURCE_PORT, destination 127.0.0.1:$DEST_PORT, emulator http://127.0.0.1:$EMULATOR_PORT"
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
    stop_emulator
    log "stopped"
    ;;
  status)
    rc=0
    printf 'source       '; "$instance" status "$STACK_DIR/source" || rc=3
    printf 'destination  '; "$instance" status "$STACK_DIR/destination" || rc=3
    if alive "$STACK_DIR/emulator/pid" && port_open "$EMULATOR_PORT"; then
      echo "emulator     running  port $EMULATOR_PORT  pid $(cat "$STACK_DIR/emulator/pid")"
    else
      echo "emulator     stopped  port $EMULATOR_PORT"; rc=3
    fi
    exit $rc
    ;;
  env) mkdir -p "$STACK_DIR"; write_env; cat "$STACK_DIR/env" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac

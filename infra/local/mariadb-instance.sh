#!/usr/bin/env bash
# One MariaDB server of the local stack: its own datadir, port, socket and pid file, on 127.0.0.1.
#
#   mariadb-instance.sh template            build the template datadir (time zones, users) once
#   mariadb-instance.sh start DIR PORT [MARIADBD-OPTION ...]
#   mariadb-instance.sh stop DIR
#   mariadb-instance.sh status DIR
#
# Every instance starts from a copy of one template datadir that already has the time-zone tables
# and the `tidemark` user, so a private server for one test is up in about a second.
# Idempotent: start on a running instance does nothing; a stale pid file or a half-made datadir is
# cleaned up. Used by stack.sh and by the test harness (tests/src/harness).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
DB_USER=${TIDEMARK_DB_USER:-tidemark}
DB_PASSWORD=${TIDEMARK_DB_PASSWORD:-tidemark-local-only}
TEMPLATE=$STACK_DIR/template

log() { printf 'mariadb-instance: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { # pid file -> 0 if that process runs
  [[ -f $1 ]] || return 1
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

pinged() { mariadb-admin --no-defaults --socket="$1/mysqld.sock" -uroot ping >/dev/null 2>&1; }

launch() { # dir port extra... : start mariadbd in the background and wait until it answers
  local dir=$1 port=$2; shift 2
  local user_opt=()
  [[ $(id -u) == 0 ]] && user_opt=(--user=root)
  rm -f "$dir/mysqld.sock" "$dir/mariadbd.pid"
  # A temporary directory of its own: another program cleaning /tmp must not pull internal
  # temporary tables from under a query (seen once as "Error on delete of '/tmp/#sql-temptable...'").
  mkdir -p "$dir/tmp"
  # setsid: the server outlives the shell that started it, and is stopped by `stop`.
  setsid mariadbd --no-defaults "${user_opt[@]}" \
    --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$dir/mysqld.sock" --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
    --tmpdir="$dir/tmp" --skip-name-resolve --skip-log-bin --local-infile=1 --max-allowed-packet=64M \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --innodb-buffer-pool-size=256M --innodb-log-file-size=128M \
    --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
    --max-connections=300 --secure-file-priv="" "$@" \
    </dev/null >>"$dir/error.log" 2>&1 &
  local i
  for i in $(seq 1 300); do
    pinged "$dir" && alive "$dir/mariadbd.pid" && return 0
    if ! kill -0 $! 2>/dev/null; then
      tail -n 20 "$dir/error.log" >&2 || true
      die "mariadbd in $dir exited during start-up (port $port in use? see $dir/error.log)"
    fi
    sleep 0.2
  done
  tail -n 20 "$dir/error.log" >&2 || true
  die "mariadbd in $dir did not answer within 60 s (see $dir/error.log)"
}

shutdown_dir() { # dir: stop the server whose pid file is there, gracefully, then by force
  local dir=$1 pidf=$1/mariadbd.pid pid i
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  pid=$(cat "$pidf")
  mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -uroot --shutdown-timeout=20 shutdown >/dev/null 2>&1 \
    || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "mariadbd $pid in $dir did not stop in 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidf" "$dir/mysqld.sock"
}

build_template() {
  [[ -f $TEMPLATE/.ready ]] && return 0
  command -v mariadbd >/dev/null || die "mariadbd is not installed: run infra/local/install.sh"
  log "building the template datadir in $TEMPLATE"
  shutdown_dir "$TEMPLATE"
  rm -rf "$TEMPLATE"; mkdir -p "$TEMPLATE"
  local user_opt=()
  [[ $(id -u) == 0 ]] && user_opt=(--user=root)
  mariadb-install-db --no-defaults "${user_opt[@]}" --datadir="$TEMPLATE/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$TEMPLATE/install.log" 2>&1 \
    || { tail -n 20 "$TEMPLATE/install.log" >&2; die "mariadb-install-db failed (see $TEMPLATE/install.log)"; }
  local port=$(( 40000 + RANDOM % 20000 ))
  launch "$TEMPLATE" "$port" --skip-networking
  # Time-zone tables: the engine and tests use named zones (CONVERT_TZ, SET time_zone='Europe/Berlin').
  mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null \
    | mariadb --no-defaults --socket="$TEMPLATE/mysqld.sock" -uroot mysql \
    || die "loading the time-zone tables failed"
  mariadb --no-defaults --socket="$TEMPLATE/mysqld.sock" -uroot <<SQL || die "creating the $DB_USER user failed"
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'::1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'::1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
SQL
  shutdown_dir "$TEMPLATE"
  rm -f "$TEMPLATE/error.log"
  touch "$TEMPLATE/.ready"
}

start() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  if alive "$dir/mariadbd.pid" && pinged "$dir"; then
    log "already running in $dir"
    return 0
  fi
  shutdown_dir "$dir" # a stale pid file, or a server that stopped answering
  build_template
  if [[ ! -f $dir/data/.tidemark-copied ]]; then
    rm -rf "$dir/data"
    cp -a "$TEMPLATE/data" "$dir/data"
    touch "$dir/data/.tidemark-copied"
  fi
  : >"$dir/error.log"
  launch "$dir" "$port" "$@"
  echo "$port" >"$dir/port"
}

status() {
  local dir=$1 port="?"
  [[ -f $dir/port ]] && port=$(cat "$dir/port")
  if alive "$dir/mariadbd.pid" && pinged "$dir"; then
    echo "running  port $port  pid $(cat "$dir/mariadbd.pid")  $dir"
  else
    echo "stopped  port $port  $dir"
    return 3
  fi
}

cmd=${1:-}
case $cmd in
  template) build_template ;;
  start) [[ $# -ge 3 ]] || die "usage: $0 start DIR PORT [MARIADBD-OPTION ...]"; shift; start "$@" ;;
  stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; shutdown_dir "$2" ;;
  status) [[ $# -eq 2 ]] || die "usage: $0 status DIR"; status "$2" ;;
  *) die "usage: $0 template | start DIR PORT [MARIADBD-OPTION ...] | stop DIR | status DIR" ;;
esac

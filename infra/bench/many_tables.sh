#!/usr/bin/env bash
# A many-table schema copied by tidemark run: N tables of M rows (primary key + one secondary
# index, ~100 bytes a row), resync with verification on, channel.workers W, the first cycle into an
# empty destination each time. Compares tidemark binaries (e.g. before and after a change) in the
# same run, interleaved, best of --repeat; rows are compared after every run.
#
#   infra/bench/many_tables.sh [--tables N] [--rows M] [--workers W] [--repeat R]
#                              [--db NAME] BINARY [BINARY...]
#
# Needs the stack (infra/local/stack.sh start). Not part of the test command.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tables=400 rows=2000 workers=2 repeat=2 db=bench_many
binaries=()
while (($#)); do
  case $1 in
    --tables) tables=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "many_tables.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) binaries+=("$1"); shift ;;
  esac
done
((${#binaries[@]})) || { echo "many_tables.sh: name at least one tidemark binary" >&2; exit 2; }

export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"
export MYSQL_PWD=$TIDEMARK_DB_PASSWORD TM_BENCH_PW=$TIDEMARK_DB_PASSWORD
src() { mariadb --no-defaults -h127.0.0.1 -P"$TIDEMARK_SOURCE_PORT" -u"$TIDEMARK_DB_USER" -N -B "$@"; }
dst() { mariadb --no-defaults -h127.0.0.1 -P"$TIDEMARK_DEST_PORT" -u"$TIDEMARK_DB_USER" -N -B "$@"; }
work=$TIDEMARK_STACK_DIR/bench/$db
mkdir -p "$work"
copy=${db}_copy

if [[ $(src -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db'") != "$tables" ]]; then
  echo "creating $db: $tables tables of $rows rows" >&2
  {
    echo "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`; USE \`$db\`;"
    for ((t = 0; t < tables; t++)); do
      echo "CREATE TABLE t$t (id BIGINT PRIMARY KEY, a INT NOT NULL, b VARCHAR(64) NOT NULL,
            c DATETIME NOT NULL, KEY ix_a (a));
            INSERT INTO t$t SELECT seq, seq % 97, MD5(seq), TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq MINUTE
            FROM seq_1_to_$rows;"
    done
  } | src
fi
checksum() { # the whole database's rows, order-independent: rows and a sum of row CRCs
  local sum t
  sum=$("$1" -e "$(for ((t = 0; t < tables; t++)); do
      printf 'SELECT COUNT(*), SUM(CRC32(CONCAT_WS(%s, id, a, b, c))) FROM `%s`.t%d UNION ALL ' "'#'" "$2" "$t"
    done | sed 's/ UNION ALL $//')" | awk '{n += $1; s += $2} END {print n ":" s}')
  echo "$sum"
}
expected=$(checksum src "$db")

cat >"$work/task.json" <<JSON
{ "name": "bench-many",
  "source": { "host": "127.0.0.1", "port": $TIDEMARK_SOURCE_PORT, "user": "$TIDEMARK_DB_USER",
              "password_env": "TM_BENCH_PW", "tls": { "mode": "disabled" } },
  "destination": { "host": "127.0.0.1", "port": $TIDEMARK_DEST_PORT, "user": "$TIDEMARK_DB_USER",
                   "password_env": "TM_BENCH_PW", "tls": { "mode": "disabled" } },
  "policy": { "mode": "resync" },
  "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                "start": "2026-12-01", "end": "2027-11-30" },
  "objects": [ { "database": "$db", "rename": "$copy" } ],
  "channel": { "workers": $workers, "chunk_mb": 64 } }
JSON

quiesce() { # the copy dropped; wait until the destination has flushed its dirty pages (bench.sh's)
  dst -e "DROP DATABASE IF EXISTS \`$copy\`;
          SET GLOBAL innodb_max_dirty_pages_pct = 0, innodb_max_dirty_pages_pct_lwm = 0"
  local i
  for i in $(seq 1 120); do
    [[ $(dst -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{print $2}') -lt 50 ]] && break
    sleep 0.5
  done
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 90, innodb_max_dirty_pages_pct_lwm = 0"
}

declare -A best
for ((r = 1; r <= repeat; r++)); do
  for bin in "${binaries[@]}"; do
    quiesce
    rm -rf "$work/state"
    start=$(date +%s%N)
    "$bin" run "$work/task.json" --data-dir "$work/state" >/dev/null 2>"$work/stderr" \
      || { cat "$work/stderr" >&2; exit 1; }
    ms=$((($(date +%s%N) - start) / 1000000))
    got=$(checksum dst "$copy")
    [[ $got == "$expected" ]] || { echo "rows differ after $bin: $got vs $expected" >&2; exit 1; }
    printf 'round %d  %-60s %d.%03d s  rows match\n' "$r" "$bin" $((ms / 1000)) $((ms % 1000))
    if [[ -z ${best[$bin]:-} ]] || ((ms < best[$bin])); then best[$bin]=$ms; fi
  done
done
for bin in "${binaries[@]}"; do
  printf 'best  %-60s %d.%03d s\n' "$bin" $((best[$bin] / 1000)) $((best[$bin] % 1000))
done

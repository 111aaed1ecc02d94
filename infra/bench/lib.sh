# Shared by the many-table benchmarks (sourced, not run): the stack's clients, quiescing the
# destination, the benchmark databases and their row checksums.
#
# Needs the stack (infra/local/stack.sh start) and $repo set by the script that sources it.

export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"
export MYSQL_PWD=$TIDEMARK_DB_PASSWORD TM_BENCH_PW=$TIDEMARK_DB_PASSWORD # never printed
SRC=(-h127.0.0.1 -P"$TIDEMARK_SOURCE_PORT" -u"$TIDEMARK_DB_USER")
DST=(-h127.0.0.1 -P"$TIDEMARK_DEST_PORT" -u"$TIDEMARK_DB_USER")
src() { mariadb --no-defaults "${SRC[@]}" -N -B "$@"; }
dst() { mariadb --no-defaults "${DST[@]}" -N -B "$@"; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# quiesce: wait until the destination has flushed its dirty pages (bench.sh's).
quiesce() {
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 0, innodb_max_dirty_pages_pct_lwm = 0"
  local i
  for i in $(seq 1 120); do
    [[ $(dst -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{print $2}') -lt 50 ]] && break
    sleep 0.5
  done
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 90, innodb_max_dirty_pages_pct_lwm = 0"
}

# make_many DB TABLES ROWS: TABLES tables t0.. of ROWS rows each (BIGINT primary key, one
# secondary index, ~100 bytes a row), unless DB already holds that many tables.
make_many() {
  local db=$1 tables=$2 rows=$3 t
  if [[ $(src -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db'") == "$tables" ]]; then
    return 0
  fi
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
}

# db_checksum CLIENT DB [SOURCE_DB]: every table's rows, order-independent and NULL-safe:
# "rows:sum". The tables and their columns come from SOURCE_DB's catalog on the source (DB's
# when not given), so any shape works and a table missing from DB is an error.
db_checksum() {
  local client=$1 db=$2 source_db=${3:-$2} sql
  sql=$(src -e "SELECT CONCAT('SELECT COUNT(*), SUM(CRC32(CONCAT_WS(''#'', ',
             GROUP_CONCAT(CONCAT('COALESCE(HEX(\`', COLUMN_NAME, '\`), ''~'')') ORDER BY ORDINAL_POSITION),
             '))) FROM \`$db\`.\`', TABLE_NAME, '\`')
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '$source_db'
           GROUP BY TABLE_NAME ORDER BY TABLE_NAME" | sed ':a;N;$!ba;s/\n/ UNION ALL /g')
  "$client" <<<"$sql" | awk '{n += $1; s += $2} END {printf "%d:%.0f\n", n, s}'
}

# task_json FILE DB COPY WORKERS [POLICY] [CHANNEL_EXTRA]: a tidemark task copying DB to COPY.
task_json() {
  local file=$1 db=$2 copy=$3 workers=$4 policy=${5:-'{ "mode": "resync" }'} extra=${6:-}
  local rename="\"rename\": \"$copy\", "
  [[ $policy == *multi_replica* ]] && rename=""
  cat >"$file" <<JSON
{ "name": "bench-$db",
  "source": { "host": "127.0.0.1", "port": $TIDEMARK_SOURCE_PORT, "user": "$TIDEMARK_DB_USER",
              "password_env": "TM_BENCH_PW", "tls": { "mode": "disabled" } },
  "destination": { "host": "127.0.0.1", "port": $TIDEMARK_DEST_PORT, "user": "$TIDEMARK_DB_USER",
                   "password_env": "TM_BENCH_PW", "tls": { "mode": "disabled" } },
  "policy": $policy,
  "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                "start": "2026-12-01", "end": "2027-11-30" },
  "objects": [ { ${rename}"database": "$db" } ],
  "channel": { "workers": $workers, "chunk_mb": 64$extra } }
JSON
}

# status_snapshot CLIENT: the server's global counters as "name value" lines.
status_snapshot() { "$1" -e "SHOW GLOBAL STATUS" ; }

#!/usr/bin/env bash
# The copy benchmark: one table (1M rows by default, primary key + one secondary index, ~200 MB)
# copied from the source to the destination server of the local stack by
#   R  the destination's own server-side LOAD DATA INFILE (index maintained during the load)
#   L  the same, with the secondary index added after the load (the floor for a deferring copier)
#   mysqldump | mysql
#   mydumper then myloader (threads = tidemark's workers)
#   tidemark run, verification on and off
# Each contender runs --repeat times (best kept: this machine is noisy); the destination is
# quiesced (dirty pages flushed) before each timed run. Prints times, ratios, tidemark's peak RSS,
# and whether the source's and the destination's row hashes match.
#
#   infra/bench/bench.sh [--rows N] [--repeat N] [--workers N] [--only LIST] [--keep-stack]
#                        [--db NAME] [--tidemark BINARY]
#
# Needs the stack (it starts it if it is down, and stops it at the end unless --keep-stack) and a
# release build of tidemark (built here unless --tidemark names a binary). The table is NAME.items
# (default bench.items), copied to NAME_copy. Not part of the test command; the tests run a small
# version of it (functions/tidemark/tests/bench.rs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
rows=1000000 repeat=3 workers=4 only="R,L,mysqldump,mydumper,tidemark,tidemark-noverify" keep=0
db=bench tidemark=""
while (($#)); do
  case $1 in
    --rows) rows=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep-stack) keep=1; shift ;;
    --db) db=$2; shift 2 ;;
    --tidemark) tidemark=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
started_stack=0
if ! "$repo/infra/local/stack.sh" status >/dev/null 2>&1; then
  "$repo/infra/local/stack.sh" start; started_stack=1
fi
[[ $keep == 1 ]] || { [[ $started_stack == 1 ]] && trap '"$repo/infra/local/stack.sh" stop' EXIT; }
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"
export MYSQL_PWD=$TIDEMARK_DB_PASSWORD # for the mysql tools; never printed
SRC=(-h127.0.0.1 -P"$TIDEMARK_SOURCE_PORT" -u"$TIDEMARK_DB_USER")
DST=(-h127.0.0.1 -P"$TIDEMARK_DEST_PORT" -u"$TIDEMARK_DB_USER")
src() { mariadb --no-defaults "${SRC[@]}" -N -B "$@"; }
dst() { mariadb --no-defaults "${DST[@]}" -N -B "$@"; }
work=$TIDEMARK_STACK_DIR/bench/$db
copy=${db}_copy
mkdir -p "$work"
wanted() { [[ ",$only," == *",$1,"* ]]; }

TABLE_DDL="CREATE TABLE items (
  id BIGINT NOT NULL PRIMARY KEY,
  customer_id INT NOT NULL,
  sku VARCHAR(32) NOT NULL,
  qty INT NOT NULL,
  price DECIMAL(12,2) NOT NULL,
  note VARCHAR(160) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  KEY idx_customer (customer_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"

echo "== building $db.items with $rows rows on the source" >&2
if [[ $(src -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='$db' AND TABLE_NAME='items' AND TABLE_ROWS > 0" ) != 1 \
   || $(src -e "SELECT COUNT(*) FROM \`$db\`.items") != "$rows" ]]; then
  src -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`; USE \`$db\`; $TABLE_DDL;
    INSERT INTO items SELECT seq, seq % 50021, CONCAT('SKU-', LPAD(seq % 99991, 8, '0')), seq % 17,
      (seq % 100000) / 100, CONCAT(MD5(seq), ' ', SHA1(seq), ' ', MD5(seq * 7), ' ', seq),
      TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq % 1000000) MICROSECOND
    FROM seq_1_to_$rows;"
fi
src -e "ANALYZE TABLE \`$db\`.items" >/dev/null
size_mb=$(src -e "SELECT ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA='$db' AND TABLE_NAME='items'")
rm -f "$work/items.tsv"
src -e "SELECT * FROM \`$db\`.items INTO OUTFILE '$work/items.tsv'"
echo "   table: $rows rows, ${size_mb} MB (data + indexes)" >&2

row_hash() { # server-args... db : an order-independent hash of every row, NULL-safe
  local -a who=("${@:1:$#-1}"); local db=${*: -1}
  mariadb --no-defaults "${who[@]}" -N -B -e "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('#', id, customer_id, HEX(sku), qty, price, HEX(note), created_at))) FROM \`$db\`.items"
}
source_hash=$(row_hash "${SRC[@]}" "$db")

quiesce() { # wait until the destination has flushed its dirty pages
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 0, innodb_max_dirty_pages_pct_lwm = 0" >/dev/null
  local i
  for i in $(seq 1 120); do
    [[ $(dst -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{print $2}') -lt 50 ]] && break
    sleep 0.5
  done
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 90, innodb_max_dirty_pages_pct_lwm = 0" >/dev/null
}
fresh_target() { dst -e "DROP DATABASE IF EXISTS \`$copy\`; CREATE DATABASE \`$copy\`"; }

declare -A best rss match
record() { # name seconds rss
  local name=$1 secs=$2 mib=$3
  if [[ -z ${best[$name]:-} ]] || awk "BEGIN{exit !($secs < ${best[$name]})}"; then
    best[$name]=$secs; rss[$name]=$mib
  fi
}
timed() { # name 'command' : one timed run, recorded
  local name=$1 cmd=$2 out
  quiesce
  out=$("$here/measure.py" "$cmd" 2>&1 >/dev/null | tail -n 1)
  record "$name" ${out% *} ${out#* }
}
check() { # name db
  local got; got=$(row_hash "${DST[@]}" "$2")
  if [[ $got == "$source_hash" ]]; then match[$1]=yes; else match[$1]="NO ($got vs $source_hash)"; fi
}

if wanted tidemark || wanted tidemark-noverify; then
  if [[ -z $tidemark ]]; then
    echo "== building tidemark (release)" >&2
    (cd "$repo" && cargo build --release -p tidemark --quiet)
    tidemark=$repo/target/release/tidemark
  fi
  for verify in true false; do
    cat >"$work/task-$verify.json" <<JSON
{ "name": "bench",
  "source": { "host": "127.0.0.1", "port": $TIDEMARK_SOURCE_PORT, "user": "$TIDEMARK_DB_USER", "password_env": "MYSQL_PWD" },
  "destination": { "host": "127.0.0.1", "port": $TIDEMARK_DEST_PORT, "user": "$TIDEMARK_DB_USER", "password_env": "MYSQL_PWD" },
  "policy": { "mode": "resync" },
  "schedule": { "cycle": "day", "at": "02:00", "time_zone": "UTC", "start": "2026-01-01", "end": "2026-12-31" },
  "objects": [ { "database": "$db", "rename": "$copy", "tables": [ { "name": "items" } ] } ],
  "channel": { "workers": $workers, "chunk_mb": 16, "verify": $verify } }
JSON
  done
fi

for i in $(seq 1 "$repeat"); do
  echo "== round $i of $repeat" >&2
  if wanted R; then
    fresh_target; dst $copy -e "$TABLE_DDL"
    timed R "mariadb --no-defaults ${DST[*]} $copy -e \"LOAD DATA INFILE '$work/items.tsv' INTO TABLE items\""
    check R $copy
  fi
  if wanted L; then
    fresh_target; dst $copy -e "${TABLE_DDL/,
  KEY idx_customer (customer_id, created_at)/}"
    timed L "mariadb --no-defaults ${DST[*]} $copy -e \"LOAD DATA INFILE '$work/items.tsv' INTO TABLE items; ALTER TABLE items ADD KEY idx_customer (customer_id, created_at)\""
    check L $copy
  fi
  if wanted mysqldump; then
    fresh_target
    timed mysqldump "mysqldump --no-defaults ${SRC[*]} --single-transaction --skip-lock-tables $db items | mariadb --no-defaults ${DST[*]} $copy"
    check mysqldump $copy
  fi
  if wanted mydumper; then
    fresh_target; rm -rf "$work/dump"
    timed mydumper "mydumper -h 127.0.0.1 -P $TIDEMARK_SOURCE_PORT -u $TIDEMARK_DB_USER -p \"\$MYSQL_PWD\" -B $db -T items -t $workers -o '$work/dump' && myloader -h 127.0.0.1 -P $TIDEMARK_DEST_PORT -u $TIDEMARK_DB_USER -p \"\$MYSQL_PWD\" -d '$work/dump' -B $copy -t $workers -o"
    check mydumper $copy
  fi
  for variant in tidemark tidemark-noverify; do
    wanted $variant || continue
    verify=true; [[ $variant == tidemark-noverify ]] && verify=false
    dst -e "DROP DATABASE IF EXISTS $copy"
    # A fresh state: a run already recorded for this scheduled time would (rightly) do nothing.
    rm -rf "$work/state-$i-$verify"
    timed $variant "'$tidemark' run '$work/task-$verify.json' --data-dir '$work/state-$i-$verify' --scheduled-time 2026-06-01T02:00:00Z"
    check $variant $copy
  done
done

printf '\n%-20s %9s %9s %10s %10s  %s\n' contender seconds "MB/s" "vs R" "RSS MiB" "rows match"
for name in R L mysqldump mydumper tidemark tidemark-noverify; do
  [[ -n ${best[$name]:-} ]] || continue
  ratio="-"; [[ -n ${best[R]:-} ]] && ratio=$(awk "BEGIN{printf \"%.2fx\", ${best[R]} / ${best[$name]}}")
  # Peak RSS is tidemark's own; for the others it would be a client tool's, not the copier's.
  mib="-"; [[ $name == tidemark* ]] && mib=${rss[$name]}
  printf '%-20s %9s %9s %10s %10s  %s\n' "$name" "${best[$name]}" \
    "$(awk "BEGIN{printf \"%.0f\", $size_mb / ${best[$name]}}")" "$ratio" "$mib" "${match[$name]}"
done

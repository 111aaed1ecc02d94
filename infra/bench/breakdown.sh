#!/usr/bin/env bash
# Where a many-table copy's time goes, for tidemark and for mydumper + myloader, and the
# destination's own DDL floor. One command:
#
#   infra/bench/breakdown.sh [--tables N] [--rows M] [--workers W] [--repeat R] [--db NAME]
#                            [--tidemark BINARY] [--out DIR] [--parts counted,timed,floor]
#
# N tables of M rows (default 400 x 2,000; `--tables 1` is "a small table"), resync, verification
# on, channel.workers W (2) against mydumper -t W + myloader -t W, first cycle into an empty
# destination each time. It prints, per contender:
#   1. one counted run: every statement on both servers from their general logs (round trips)
#      and slow logs at long_query_time = 0 (the server's time per statement), by kind and, for
#      tidemark, by phase (its Schema, Chunk and Finalize steps' windows, from its debug log);
#      the servers' Com_* counters; tidemark's time per step kind and its state-store calls;
#   2. R timed runs without server logging (wall seconds, the load average, tidemark's phases),
#      rows compared after each;
#   3. the DDL floor: the N tables' CREATE TABLEs alone on the destination (as mysqldump prints
#      them, index inline, in 1, 2, 4 and 8 sessions), and the DDL tidemark runs (`tidemark plan`:
#      CREATE with the primary key, then ALTER TABLE .. ADD KEY), each best of R.
# Everything captured stays in --out (default $TIDEMARK_STACK_DIR/bench/breakdown-NxM).
# The machine is shared: rely on the counts; the wall times come with their spread and load.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tables=400 rows=2000 workers=2 repeat=3 db="" tidemark="" out="" parts=counted,timed,floor
while (($#)); do
  case $1 in
    --tables) tables=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --tidemark) tidemark=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "breakdown.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck source=infra/bench/lib.sh
source "$here/lib.sh"
db=${db:-bd_${tables}x${rows}}
copy=${db}_copy
out=${out:-$TIDEMARK_STACK_DIR/bench/breakdown-${tables}x${rows}}
mkdir -p "$out"
if [[ -z $tidemark ]]; then
  (cd "$repo" && cargo build --release -p tidemark --quiet)
  tidemark=$repo/target/release/tidemark
fi
make_many "$db" "$tables" "$rows"
expected=$(db_checksum src "$db")
task_json "$out/task.json" "$db" "$copy" "$workers"
export TIDEMARK_LOG="warn,tidemark::steps=debug,tidemark::metering=debug"

logs_on() {
  local c
  for c in src dst; do
    $c -e "SET GLOBAL general_log = OFF, slow_query_log = OFF; SET GLOBAL log_output = 'TABLE';
           TRUNCATE mysql.general_log; TRUNCATE mysql.slow_log;
           SET GLOBAL long_query_time = 0, log_slow_admin_statements = ON, log_slow_filter = '',
             general_log = ON, slow_query_log = ON"
  done
}
# logs_off DIR: the logs of both servers into DIR, without this script's own sessions.
logs_off() {
  local c name mine
  for c in src dst; do
    $c -e "SET GLOBAL general_log = OFF, slow_query_log = OFF, long_query_time = 10"
    name=source; [[ $c == dst ]] && name=destination
    mine="SELECT thread_id FROM mysql.general_log WHERE argument LIKE '%general_log%'
            OR argument LIKE 'SHOW GLOBAL STATUS%' OR argument LIKE '%information_schema.COLUMNS WHERE TABLE_SCHEMA%GROUP BY%'"
    $c -e "SET time_zone = '+00:00';
      SELECT event_time, thread_id, command_type,
             LEFT(REPLACE(REPLACE(CONVERT(argument USING utf8mb4), '\t', ' '), '\n', ' '), 160)
      FROM mysql.general_log WHERE thread_id NOT IN ($mine)" >"$1/$name.general.tsv"
    $c -e "SET time_zone = '+00:00';
      SELECT start_time, thread_id, TIME_TO_SEC(query_time) + MICROSECOND(query_time) / 1e6,
             LEFT(REPLACE(REPLACE(CONVERT(sql_text USING utf8mb4), '\t', ' '), '\n', ' '), 160)
      FROM mysql.slow_log WHERE thread_id NOT IN ($mine)" >"$1/$name.slow.tsv"
    $c -e "TRUNCATE mysql.general_log; TRUNCATE mysql.slow_log; SET GLOBAL log_output = 'FILE'"
  done
}
# counters DIR before|after: both servers' global status.
counters() { status_snapshot src >"$1/source.status.$2"; status_snapshot dst >"$1/destination.status.$2"; }
counter_diff() { # DIR: the counters that moved, Com_* and a few others
  local name
  for name in source destination; do
    echo "  $name (SHOW GLOBAL STATUS, after - before):"
    awk 'NR == FNR {b[$1] = $2; next}
         ($1 ~ /^Com_/ || $1 ~ /^(Questions|Connections|Bytes_received|Bytes_sent|Innodb_rows_inserted|Handler_write|Created_tmp_tables|Opened_tables)$/) && $2 - b[$1] > 0 {
           printf "    %-32s %10d\n", $1, $2 - b[$1] }' \
      "$1/$name.status.before" "$1/$name.status.after"
  done
}
check_rows() { # NAME
  local got; got=$(db_checksum dst "$copy" "$db")
  [[ $got == "$expected" ]] || { echo "rows differ after $1: $got vs $expected" >&2; exit 1; }
}
run_tidemark() { # STATE_DIR LOG
  rm -rf "$1"
  "$tidemark" run "$out/task.json" --data-dir "$1" >/dev/null 2>"$2" || { cat "$2" >&2; exit 1; }
}
run_mydumper() { # -> "dump_s load_s"
  rm -rf "$out/dump"
  local t0 t1 t2
  t0=$(date +%s%N)
  mydumper -h 127.0.0.1 -P "$TIDEMARK_SOURCE_PORT" -u "$TIDEMARK_DB_USER" -p "$MYSQL_PWD" -B "$db" \
    -t "$workers" -o "$out/dump" 2>>"$out/mydumper.err"
  t1=$(date +%s%N)
  myloader -h 127.0.0.1 -P "$TIDEMARK_DEST_PORT" -u "$TIDEMARK_DB_USER" -p "$MYSQL_PWD" -d "$out/dump" \
    -B "$copy" -t "$workers" -o 2>>"$out/myloader.err"
  t2=$(date +%s%N)
  echo "$(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000))"
}
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

echo "== $tables tables x $rows rows, workers $workers; load average $(loadavg)"
part() { [[ ",$parts," == *",$1,"* ]]; }
# 1. Counted runs.
part counted && for who in tidemark mydumper; do
  dir=$out/counted-$who; mkdir -p "$dir"
  dst -e "DROP DATABASE IF EXISTS \`$copy\`"; quiesce
  counters "$dir" before; logs_on
  if [[ $who == tidemark ]]; then run_tidemark "$out/state" "$dir/tidemark.log"; else run_mydumper >/dev/null; fi
  logs_off "$dir"; counters "$dir" after
  check_rows "$who (counted)"
  echo; echo "######## $who: one counted run (general + slow logs on)"
  "$here/breakdown.py" "$dir"
  echo; counter_diff "$dir"
done

spread() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {printf "best %.3f s, worst %.3f s", a[1] / 1000, a[NR] / 1000}'; }
# 2. Timed runs.
declare -a tm_ms=() my_ms=()
part timed && echo && echo "######## timed runs (server logs off), best of $repeat"
part timed && for ((r = 1; r <= repeat; r++)); do
  dst -e "DROP DATABASE IF EXISTS \`$copy\`"; quiesce
  load=$(loadavg); t0=$(date +%s%N)
  run_tidemark "$out/state" "$out/timed-tidemark-$r.log"
  ms=$((($(date +%s%N) - t0) / 1000000)); tm_ms+=("$ms"); check_rows tidemark
  printf 'round %d  tidemark            %s s  rows match  load %s\n' "$r" "$(secs "$ms")" "$load"
  mkdir -p "$out/timed-$r"; cp "$out/timed-tidemark-$r.log" "$out/timed-$r/tidemark.log"
  "$here/breakdown.py" "$out/timed-$r" | sed -n '/tidemark steps/,/schema start/p' | sed 's/^/          /'
  dst -e "DROP DATABASE IF EXISTS \`$copy\`"; quiesce
  load=$(loadavg); t0=$(date +%s%N)
  read -r dump_ms load_ms < <(run_mydumper)
  ms=$((($(date +%s%N) - t0) / 1000000)); my_ms+=("$ms"); check_rows mydumper
  printf 'round %d  mydumper+myloader   %s s  (dump %s, load %s)  rows match  load %s\n' "$r" \
    "$(secs "$ms")" "$(secs "$dump_ms")" "$(secs "$load_ms")" "$load"
done
if part timed; then
  echo "tidemark:          $(spread "${tm_ms[@]}")"
  echo "mydumper+myloader: $(spread "${my_ms[@]}")"
fi

# 3. The DDL floor.
part floor || exit 0
echo; echo "######## the destination's DDL floor, best of $repeat"
# Each CREATE TABLE on one line (mysqldump's, index inline), so W sessions can share them out.
mysqldump --no-defaults "${SRC[@]}" --no-data --compact --skip-triggers "$db" \
  | awk '/^CREATE TABLE/ {on = 1} on {printf "%s ", $0} on && /;$/ {print ""; on = 0}' >"$out/ddl.sql"
# tidemark's own DDL for the first cycle: shadows with their primary keys, ALTER TABLE .. ADD
# KEY, the swap (only the shadows renamed: nothing is live yet) and the retired copies dropped.
"$tidemark" plan "$out/task.json" 2>/dev/null | sed "s/\`$copy\`/\`floor_tm\`/g" \
  | sed -E 's/`[^`]+`\.`[^`]+` TO `[^`]+`\.`_tm_o_[^`]*`(, )?//g' >"$out/plan.sql"
floor() { # NAME DB 'command'
  local name=$1 fdb=$2 cmd=$3 r
  local -a all=()
  for ((r = 1; r <= repeat; r++)); do
    dst -e "DROP DATABASE IF EXISTS \`$fdb\`; CREATE DATABASE \`$fdb\`"; quiesce
    local t0; t0=$(date +%s%N)
    bash -c "$cmd"
    all+=($((($(date +%s%N) - t0) / 1000000)))
  done
  printf '%-58s %s  load %s\n' "$name" "$(spread "${all[@]}")" "$(loadavg)"
}
for sessions in 1 2 4 8; do
  rm -f "$out"/ddl.part.*
  split -n "r/$sessions" "$out/ddl.sql" "$out/ddl.part."
  floor "CREATE TABLE x $tables, index inline, $sessions session(s)" floor_ddl \
    "for f in '$out'/ddl.part.*; do mariadb --no-defaults ${DST[*]} floor_ddl <\"\$f\" & done; wait"
done
floor "tidemark plan's DDL (CREATE pk; ALTER ADD KEY), 1 session" floor_tm \
  "mariadb --no-defaults ${DST[*]} <'$out/plan.sql'"

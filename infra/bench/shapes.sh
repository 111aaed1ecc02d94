#!/usr/bin/env bash
# Every shape of schema #22 names, each copied by tidemark and by its peers in the same run:
#
#   infra/bench/shapes.sh [--shapes many,autoinc,blobs,uuid,thousand] [--repeat R] [--workers W]
#                         [--contenders tidemark,repeat,replica,mydumper,mysqldump]
#                         [--tidemark BINARY] [--out DIR]
#
# Shapes (source databases made once, kept between runs):
#   many      400 tables of 2,000 rows (BIGINT key, one secondary index, ~100 bytes a row)
#   autoinc   1,000,000 rows, BIGINT AUTO_INCREMENT key + one secondary index
#   blobs     40,000 rows of ~16 KB (an 8 KB TEXT and an 8 KB BLOB)
#   uuid      300,000 rows keyed by CHAR(36) UUIDs (random order)
#   thousand  1,000 tables of 500 rows
# Contenders, each into an empty destination database unless said:
#   tidemark  `tidemark run`, resync, verification on, channel.workers W (2): the first cycle
#   repeat    the same task's second cycle (the destination holds the first's copy)
#   replica   multi_replica's first cycle
#   mydumper  mydumper -t W, then myloader -t W
#   mysqldump mysqldump --single-transaction | mysql
# Every run: the destination's dirty pages flushed first, wall seconds and the largest process's
# peak RSS (measure.py), rows compared with the source (order-independent row hash). Each shape
# prints every round, then best and worst per contender and tidemark's ratio to mydumper +
# myloader, round by round and best against best. The machine's load is printed with each run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
shapes=many,autoinc,blobs,uuid,thousand repeat=3 workers=2 tidemark="" out=""
contenders=tidemark,repeat,replica,mydumper,mysqldump
while (($#)); do
  case $1 in
    --shapes) shapes=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --contenders) contenders=$2; shift 2 ;;
    --tidemark) tidemark=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "shapes.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck source=infra/bench/lib.sh
source "$here/lib.sh"
out=${out:-$TIDEMARK_STACK_DIR/bench/shapes}
mkdir -p "$out"
if [[ -z $tidemark ]]; then
  (cd "$repo" && cargo build --release -p tidemark --quiet)
  tidemark=$repo/target/release/tidemark
fi
needs=(mariadb)
[[ ",$contenders," == *,mydumper,* ]] && needs+=(mydumper myloader)
[[ ",$contenders," == *,mysqldump,* ]] && needs+=(mysqldump)
for tool in "${needs[@]}"; do
  command -v "$tool" >/dev/null \
    || { echo "shapes.sh: $tool is not installed (apt-get install mydumper mariadb-client)" >&2; exit 2; }
done

# make_one DB TABLE_DDL INSERT_SELECT ROWS: a one-table shape, unless it holds ROWS rows already.
make_one() {
  local db=$1 ddl=$2 insert=$3 rows=$4
  if [[ $(src -e "SELECT COUNT(*) FROM \`$db\`.t" 2>/dev/null || true) == "$rows" ]]; then return 0; fi
  echo "creating $db: $rows rows" >&2
  src -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`; USE \`$db\`; $ddl; $insert"
}
make_shape() { # SHAPE -> the source database's name on stdout
  case $1 in
    many) make_many bs_many 400 2000; echo bs_many ;;
    thousand) make_many bs_thousand 1000 500; echo bs_thousand ;;
    autoinc)
      make_one bs_autoinc "CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
          customer_id INT NOT NULL, created_at DATETIME(6) NOT NULL, amount DECIMAL(12,2) NOT NULL,
          note VARCHAR(64) NOT NULL, KEY ix_customer (customer_id, created_at))" \
        "INSERT INTO t (customer_id, created_at, amount, note) SELECT seq % 5003,
          TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, (seq % 100000) / 100, MD5(seq)
          FROM seq_1_to_1000000" 1000000
      echo bs_autoinc ;;
    blobs)
      make_one bs_blobs "CREATE TABLE t (id INT PRIMARY KEY, title VARCHAR(200) NOT NULL,
          body TEXT NOT NULL, data BLOB NOT NULL)" \
        "INSERT INTO t SELECT seq, CONCAT('document ', seq), REPEAT(MD5(seq), 256),
          UNHEX(REPEAT(MD5(seq + 1), 512)) FROM seq_1_to_40000" 40000
      echo bs_blobs ;;
    uuid)
      make_one bs_uuid "CREATE TABLE t (id CHAR(36) NOT NULL PRIMARY KEY, a INT NOT NULL,
          b VARCHAR(64) NOT NULL, c DATETIME NOT NULL, KEY ix_a (a))" \
        "INSERT INTO t SELECT LOWER(CONCAT_WS('-', SUBSTR(m, 1, 8), SUBSTR(m, 9, 4), SUBSTR(m, 13, 4),
          SUBSTR(m, 17, 4), SUBSTR(m, 21, 12))), seq % 97, MD5(seq + 7),
          TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq MINUTE
          FROM (SELECT seq, MD5(seq) AS m FROM seq_1_to_300000) s" 300000
      echo bs_uuid ;;
    *) echo "shapes.sh: unknown shape $1" >&2; exit 2 ;;
  esac
}

# The replicas of DB (multi_replica's <db>_<yyyymmdd_HH_mm_ss>), newest first.
replicas() { dst -e "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA
                     WHERE SCHEMA_NAME REGEXP '^$1_[0-9]{8}_[0-9]{2}_[0-9]{2}_[0-9]{2}\$' ORDER BY 1 DESC"; }
clear_dest() { # DB COPY
  local r
  dst -e "DROP DATABASE IF EXISTS \`$2\`"
  for r in $(replicas "$1"); do dst -e "DROP DATABASE \`$r\`"; done
}
tm() { # TASK STATE TIME LOG
  "$tidemark" run "$1" --data-dir "$2" --scheduled-time "$3" >/dev/null 2>"$4" || { cat "$4" >&2; return 1; }
}
# measured CONTENDER DB COPY: runs it (its preparation unmeasured), prints "seconds rss_mib".
measured() {
  local who=$1 db=$2 copy=$3 state=$out/state-$2 cmd
  rm -rf "$state"
  case $who in
    tidemark) cmd="'$tidemark' run '$out/task-$db.json' --data-dir '$state' --scheduled-time 2026-12-02T02:30:00Z >/dev/null 2>'$out/last.log'" ;;
    repeat)
      tm "$out/task-$db.json" "$state" 2026-12-02T02:30:00Z "$out/last.log"
      cmd="'$tidemark' run '$out/task-$db.json' --data-dir '$state' --scheduled-time 2026-12-03T02:30:00Z >/dev/null 2>'$out/last.log'" ;;
    replica) cmd="'$tidemark' run '$out/replica-$db.json' --data-dir '$state' --scheduled-time 2026-12-02T02:30:00Z >/dev/null 2>'$out/last.log'" ;;
    mydumper)
      rm -rf "$out/dump"
      cmd="mydumper -h 127.0.0.1 -P $TIDEMARK_SOURCE_PORT -u $TIDEMARK_DB_USER -p \"\$MYSQL_PWD\" -B $db -t $workers -o '$out/dump' 2>>'$out/mydumper.err' &&
           myloader -h 127.0.0.1 -P $TIDEMARK_DEST_PORT -u $TIDEMARK_DB_USER -p \"\$MYSQL_PWD\" -d '$out/dump' -B $copy -t $workers -o 2>>'$out/mydumper.err'" ;;
    mysqldump)
      dst -e "CREATE DATABASE \`$copy\`"
      cmd="mysqldump --no-defaults ${SRC[*]} --single-transaction --skip-lock-tables $db 2>>'$out/mysqldump.err' |
           mariadb --no-defaults ${DST[*]} $copy" ;;
  esac
  quiesce
  "$here/measure.py" "$cmd" 2>&1 >/dev/null | tail -1 || { cat "$out/last.log" >&2 2>/dev/null; return 1; }
}

names=(); declare -A best worst all
for shape in ${shapes//,/ }; do
  db=$(make_shape "$shape")
  copy=${db}_copy
  task_json "$out/task-$db.json" "$db" "$copy" "$workers"
  task_json "$out/replica-$db.json" "$db" "$copy" "$workers" '{ "mode": "multi_replica", "keep_replicas": 1 }'
  # Fresh statistics, for the size printed below (and as a live server keeps them).
  src -e "$(src -e "SET SESSION group_concat_max_len = 1048576;
             SELECT CONCAT('ANALYZE TABLE ', GROUP_CONCAT(CONCAT('\`', TABLE_SCHEMA, '\`.\`', TABLE_NAME, '\`')))
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db'")" >/dev/null
  expected=$(db_checksum src "$db")
  echo "== $shape ($db): $(src -e "SELECT COUNT(*), ROUND(SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db'" | awk '{print $1 " tables, " $2 " MB"}'), workers $workers, best of $repeat"
  for ((r = 1; r <= repeat; r++)); do
    for who in ${contenders//,/ }; do
      clear_dest "$db" "$copy"
      load=$(loadavg)
      read -r secs rss < <(measured "$who" "$db" "$copy")
      target=$copy
      [[ $who == replica ]] && target=$(replicas "$db" | head -1)
      got=$(db_checksum dst "$target" "$db")
      [[ $got == "$expected" ]] || { echo "$shape: rows differ after $who: $got vs $expected" >&2; exit 1; }
      printf '  round %d  %-10s %7.2f s  peak RSS %6.1f MiB  rows match  load %s\n' "$r" "$who" "$secs" "$rss" "$load"
      key="$shape/$who"
      all[$key]="${all[$key]:-} $secs"
      if [[ -z ${best[$key]:-} ]] || awk "BEGIN {exit !($secs < ${best[$key]})}"; then best[$key]=$secs; fi
      if [[ -z ${worst[$key]:-} ]] || awk "BEGIN {exit !($secs > ${worst[$key]})}"; then worst[$key]=$secs; fi
      [[ $who == tidemark ]] && all["$shape/rss"]="${all["$shape/rss"]:-} $rss"
    done
  done
  names+=("$shape")
  clear_dest "$db" "$copy"
done

echo; echo "== summary (seconds: best / worst of $repeat; ratio = mydumper + myloader's time / tidemark's)"
printf '%-9s' shape
for who in ${contenders//,/ }; do printf ' %17s' "$who"; done
printf ' %12s %s\n' "best/best" "  round by round"
for shape in "${names[@]}"; do
  printf '%-9s' "$shape"
  for who in ${contenders//,/ }; do printf ' %8s / %6s' "${best[$shape/$who]}" "${worst[$shape/$who]}"; done
  if [[ -n ${best[$shape/tidemark]:-} && -n ${best[$shape/mydumper]:-} ]]; then
    printf ' %11.2fx  ' "$(awk "BEGIN {print ${best[$shape/mydumper]} / ${best[$shape/tidemark]}}")"
    paste -d' ' <(tr ' ' '\n' <<<"${all[$shape/tidemark]}" | sed '/^$/d') \
      <(tr ' ' '\n' <<<"${all[$shape/mydumper]}" | sed '/^$/d') | awk '{printf " %.2fx", $2 / $1}'
  fi
  echo "   tidemark peak RSS MiB:${all["$shape/rss"]:-}"
done

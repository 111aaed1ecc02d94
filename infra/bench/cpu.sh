#!/usr/bin/env bash
# Where the CPU goes in one `tidemark run` of the copy benchmark: wall time and the CPU seconds
# of the source server, the destination server and tidemark itself (from /proc, so the figures
# hold up better than wall times on a machine others share), plus tidemark's peak RSS.
#
#   infra/bench/cpu.sh TIDEMARK_BINARY TASK.json [ROUNDS]
#
# TASK.json is one that bench.sh wrote ($TIDEMARK_STACK_DIR/bench/bench/task-true.json verifies,
# task-false.json does not); run bench.sh once first (with --keep-stack) so the table and the
# tasks exist. The destination database `<db>_copy` is dropped and the destination quiesced
# before each round, as bench.sh does.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$1 task=$2 rounds=${3:-1}
export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"
export MYSQL_PWD=$TIDEMARK_DB_PASSWORD
dst() { mariadb --no-defaults -h127.0.0.1 -P"$TIDEMARK_DEST_PORT" -u"$TIDEMARK_DB_USER" -N -B "$@"; }
copy=$(sed -n 's/.*"rename": "\([^"]*\)".*/\1/p' "$task")
src_pid=$(cat "$TIDEMARK_STACK_DIR/source/mariadbd.pid")
dst_pid=$(cat "$TIDEMARK_STACK_DIR/destination/mariadbd.pid")
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq 1 "$rounds"); do
  dst -e "DROP DATABASE IF EXISTS \`$copy\`"
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 0, innodb_max_dirty_pages_pct_lwm = 0"
  for _ in $(seq 1 120); do
    [[ $(dst -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{print $2}') -lt 50 ]] && break
    sleep 0.5
  done
  dst -e "SET GLOBAL innodb_max_dirty_pages_pct = 90, innodb_max_dirty_pages_pct_lwm = 0"
  rm -rf "$work/state"
  load=$(cut -d' ' -f1 /proc/loadavg)
  s0=$(cpu "$src_pid") d0=$(cpu "$dst_pid")
  /usr/bin/time -o "$work/time" -f "%e %U %S %M" "$bin" run "$task" --data-dir "$work/state" \
    --scheduled-time 2026-06-01T02:00:00Z >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  s1=$(cpu "$src_pid") d1=$(cpu "$dst_pid")
  read -r wall user sys rss <"$work/time"
  awk -v w="$wall" -v s="$(awk "BEGIN{print $s1 - $s0}")" -v d="$(awk "BEGIN{print $d1 - $d0}")" \
      -v c="$(awk "BEGIN{print $user + $sys}")" -v r="$rss" -v l="$load" 'BEGIN {
    printf "wall %5.2f s  cpu: source %5.2f  destination %5.2f  tidemark %5.2f  total %5.2f s  rss %5.1f MiB  load %s\n",
      w, s, d, c, s + d + c, r / 1024, l }'
done

#!/usr/bin/env bash
# The soak: for N minutes (default 10), fresh tasks under a random policy are run by
# `tidemark serve` and killed at a random crash point (TIDEMARK_CRASH_AT) or by a SIGKILL at a
# random moment, restarted on the same data directory, and verified against the source (ordered,
# NULL-safe row hashes, duplicates, shadow/retired tables, replicas, triggers, watermarks). Prints
# runs, kills survived, faults injected, rows copied, rows lost and duplicates (both must be 0);
# exits 1 if any check failed. Stops by itself, and stops what it started.
#
#   infra/bench/soak.sh [--minutes N] [--seed S] [--tidemark BINARY] [--keep-stack]
#
# Needs the stack (it starts it if it is down, and stops it at the end unless --keep-stack) and a
# build of tidemark (a debug build is made here unless --tidemark names a binary). Not part of
# the test command: the fault suite (functions/tidemark/tests/faults) covers each point once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
minutes=10 seed="" tidemark="" keep=0
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --tidemark) tidemark=$2; shift 2 ;;
    --keep-stack) keep=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$repo"
export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
if [[ -z $tidemark ]]; then
  cargo build -p tidemark >&2
  tidemark=${CARGO_TARGET_DIR:-$repo/target}/debug/tidemark
fi
started_stack=0
work=$(mktemp -d /tmp/tidemark-soak.XXXXXX)
cleanup() {
  # The soak's own processes, by their pids: the driver, then the tidemark serve it last started.
  [[ -n $soak_pid ]] && kill -TERM "$soak_pid" 2>/dev/null && wait "$soak_pid" 2>/dev/null || true
  if [[ -f $work/serve.pid ]]; then kill -KILL "$(cat "$work/serve.pid")" 2>/dev/null || true; fi
  rm -rf "$work"
  [[ $started_stack == 1 && $keep == 0 ]] && "$repo/infra/local/stack.sh" stop || true
}
soak_pid=""
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! "$repo/infra/local/stack.sh" status >/dev/null 2>&1; then
  "$repo/infra/local/stack.sh" start >&2
  started_stack=1
fi
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"
python3 "$here/soak.py" --tidemark "$tidemark" --minutes "$minutes" --work "$work" \
  ${seed:+--seed "$seed"} &
soak_pid=$!
status=0
wait "$soak_pid" || status=$?
soak_pid=""
exit "$status"

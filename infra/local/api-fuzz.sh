#!/usr/bin/env bash
# The property-based API test: schemathesis generates requests from infra/openapi.yaml against a
# live `tidemark serve` that may connect to loopback only, and fails on any 5xx or any response
# (status, content type, body, headers) that contradicts the document.
#
#   infra/local/api-fuzz.sh [TIDEMARK-BINARY]     (default target/debug/tidemark)
#
# Excluded: `positive_data_acceptance`, which expects every request the schema allows to be
# accepted. The schema states types, bounds and patterns; the rules a schema cannot state (the
# 365-day window, IANA zones, exactly one password source, ...) are the validator's, and a 400
# naming the field is the right answer to a request that breaks them.
#
# It runs in a network namespace of its own (loopback only) where the machine allows one: the
# allowlist resolves a host name that no rule names (to check its addresses), and a generated
# name must not send a DNS query off the machine. Without unshare it says so and runs as is.
set -euo pipefail
if [[ -z ${TIDEMARK_FUZZ_NETNS:-} ]]; then
  if unshare --net true 2>/dev/null; then
    exec env TIDEMARK_FUZZ_NETNS=1 unshare --net bash -c 'ip link set lo up && exec "$0" "$@"' \
      "${BASH_SOURCE[0]}" "$@"
  fi
  echo "api-fuzz: unshare --net is not permitted here; generated host names may be resolved" >&2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
tidemark=${1:-${CARGO_TARGET_DIR:-$repo/target}/debug/tidemark}
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tidemark" serve --listen "127.0.0.1:$port" --data-dir "$data" --allow-hosts 127.0.0.1/32 \
  >"$data/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
"$TOOLS_DIR/schemathesis/bin/st" run "$repo/infra/openapi.yaml" --url "http://127.0.0.1:$port" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples 25 --seed 20261123 --request-timeout 20 --no-color

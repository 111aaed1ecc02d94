#!/usr/bin/env bash
# Builds the Lambda functions for `sam deploy`: `sam build --beta-features` (Rust through
# cargo-lambda, linked by zig against an old glibc), then checks that every built `bootstrap`
# needs no glibc newer than Lambda's provided.al2023 has (2.34), and prints the time taken.
#
#   infra/deploy/build.sh
#
# Uses the pinned tools in $TIDEMARK_TOOLS_DIR/deploy (infra/local/install.sh installs them:
# aws-sam-cli, cargo-lambda, and zig from the ziglang package), with SAM's telemetry off. The
# crates are fetched first (from crates.io, as any cargo build does); the build itself runs
# offline: no AWS account or credentials are needed. Output: .aws-sam/build (not in git).
#
# It builds every function template.yaml lists whose crate exists under functions/ (by its
# `BuildProperties: Binary`), and names the ones it skips; once every function has its crate,
# it builds the whole template in one `sam build`. A long release build (LTO): not part of the
# test command. CARGO_BUILD_JOBS (default 2) bounds the parallel jobs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
deploy=$TOOLS_DIR/deploy/bin
MAX_GLIBC=2.34

log() { printf 'build: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in sam cargo-lambda python3; do
  [[ -x $deploy/$tool ]] || die "$deploy/$tool is missing: run infra/local/install.sh"
done
command -v objdump >/dev/null || die "objdump is missing: run infra/local/install.sh (it installs binutils)"
command -v cargo >/dev/null || die "cargo is missing: install Rust"

# cargo-lambda and zig (python3 -m ziglang) from the pinned environment; nothing leaves the
# machine on SAM's behalf.
export PATH="$deploy:$PATH"
export SAM_CLI_TELEMETRY=0
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# cargo-lambda picks the target (x86_64-unknown-linux-gnu, through zig); a target from the
# caller's environment would send the build elsewhere.
unset CARGO_BUILD_TARGET

# Logical id and binary of every function in template.yaml (resources sit at two spaces).
mapfile -t listed < <(awk '
  /^  [A-Za-z0-9]+:$/ { resource = substr($1, 1, length($1) - 1) }
  /^        Binary: / { print resource " " $2 }
' template.yaml)
((${#listed[@]})) || die "template.yaml lists no function with BuildProperties: Binary"

resources=() skipped=()
for entry in "${listed[@]}"; do
  read -r resource binary <<<"$entry"
  if [[ -f functions/$binary/Cargo.toml ]]; then
    resources+=("$resource")
  else
    skipped+=("$resource (functions/$binary has no crate yet)")
  fi
done
((${#resources[@]})) || die "no function of template.yaml has its crate under functions/"
for s in "${skipped[@]}"; do log "skipping $s"; done

started=$(date +%s)
log "fetching the crates (Cargo.lock)"
cargo fetch --locked
export CARGO_NET_OFFLINE=true

sam_build() {
  sam build --beta-features --template template.yaml --config-file "$repo/infra/samconfig.toml" "$@"
}
if ((${#skipped[@]} == 0)); then
  log "sam build --beta-features: the whole template (${resources[*]})"
  sam_build
else
  # sam build takes one resource at a time and clears its build directory first: each is built
  # into a directory of its own, then gathered into .aws-sam/build/<resource>/.
  rm -rf .aws-sam/build .aws-sam/partial
  for resource in "${resources[@]}"; do
    log "sam build --beta-features $resource"
    sam_build --build-dir ".aws-sam/partial/$resource" "$resource"
    mkdir -p .aws-sam/build
    cp -r ".aws-sam/partial/$resource/$resource" .aws-sam/build/
  done
fi

# provided.al2023 has glibc 2.34: a bootstrap that needs a newer symbol version fails to start.
failed=0
for resource in "${resources[@]}"; do
  bootstrap=.aws-sam/build/$resource/bootstrap
  if [[ ! -f $bootstrap ]]; then
    log "$resource: no $bootstrap was built"; failed=1; continue
  fi
  newest=$(objdump -T "$bootstrap" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  newest=${newest:-none}
  size=$(du -h "$bootstrap" | cut -f1)
  if [[ $newest != none && $(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -n 1) != "$MAX_GLIBC" ]]; then
    log "$resource: $bootstrap ($size) needs glibc $newest, newer than provided.al2023's $MAX_GLIBC"
    failed=1
  else
    log "$resource: $bootstrap ($size) needs glibc $newest at most (<= $MAX_GLIBC): ok"
  fi
done

elapsed=$(($(date +%s) - started))
log "took $((elapsed / 60)) min $((elapsed % 60)) s"
((failed == 0)) || die "a bootstrap cannot run on provided.al2023 (see above)"
if ((${#skipped[@]})); then
  log "built ${#resources[@]} of ${#listed[@]} functions; not yet deployable: ${skipped[*]}"
else
  log "ready: sam deploy --guided --config-file infra/samconfig.toml"
fi

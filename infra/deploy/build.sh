#!/usr/bin/env bash
# Builds the Lambda functions for `sam deploy`: `sam build --beta-features` (Rust through
# cargo-lambda, linked by zig against an old glibc) for one architecture, then checks that every
# built `bootstrap` is for that architecture and needs no glibc newer than Lambda's
# provided.al2023 has (2.34), and prints the time taken and the bootstraps' sizes.
#
#   infra/deploy/build.sh [--arch arm64|x86_64]
#
# --arch is the template's `Architecture` parameter (default arm64, as the template's); deploy
# with the same value. arm64 needs Rust's aarch64-unknown-linux-gnu standard library
# (`rustup target add aarch64-unknown-linux-gnu`), x86_64 x86_64-unknown-linux-gnu's.
#
# Tools come from PATH, at these versions or newer: sam (aws-sam-cli) 1.100, cargo-lambda 1.0,
# zig 0.13 (a `zig` binary, or Python's `ziglang` package as cargo-lambda's pip package brings),
# cargo, and objdump (binutils or LLVM's). Install them your usual way (brew, pip, cargo
# install, your CI's images); infra/local/install.sh puts pinned ones in
# $TIDEMARK_TOOLS_DIR/deploy/bin, which is searched after PATH. SAM's telemetry is off. The
# crates are fetched first (from crates.io, as any cargo build does); the build itself runs
# offline: no AWS account or credentials are needed. Output: .aws-sam/build (not in git).
#
# A long release build (LTO): not part of the test command. CARGO_BUILD_JOBS (default 2) bounds
# the parallel jobs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

# The template's Architecture parameter's values, and Rust's target for each.
ARCHES=(arm64 x86_64)
declare -A RUST_TARGET=([arm64]=aarch64-unknown-linux-gnu [x86_64]=x86_64-unknown-linux-gnu)
# What objdump -f says of an ELF file of each.
# (GNU objdump says "i386:x86-64" of an x86_64 ELF file, LLVM's "x86_64".)
declare -A ELF_ARCH=([arm64]=aarch64 [x86_64]='(i386:)?x86[-_]64')
MAX_GLIBC=2.34
MIN_SAM=1.100.0 MIN_CARGO_LAMBDA=1.0.0 MIN_ZIG=0.13.0

log() { printf 'build: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

arch=arm64
while (($#)); do
  case $1 in
    --arch) (($# >= 2)) || die "--arch needs a value: ${ARCHES[*]}"; arch=$2; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n ${RUST_TARGET[$arch]:-} ]] || die "--arch $arch: the template's Architecture is one of ${ARCHES[*]}"
target=${RUST_TARGET[$arch]}

# The pinned tools of infra/local/install.sh, if any, after the caller's own.
TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
[[ -d $TOOLS_DIR/deploy/bin ]] && export PATH="$PATH:$TOOLS_DIR/deploy/bin"

# The first x.y.z in a tool's version line.
version_of() { grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' <<<"$1" | head -n 1; }
at_least() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1) == "$2" ]]; }
need() { # name minimum how-to-install version-command...
  local name=$1 min=$2 how=$3; shift 3
  local out version
  out=$("$@" 2>/dev/null) || die "$name is not on PATH: $how"
  version=$(version_of "$out")
  [[ -n $version ]] || die "$name: cannot read its version from \`$*\` ($out)"
  at_least "$version" "$min" || die "$name $version is too old: $min or newer is needed ($how)"
  log "$name $version"
}
export SAM_CLI_TELEMETRY=0
need cargo 1.90.0 "install Rust (https://rustup.rs)" cargo --version
need sam "$MIN_SAM" "install aws-sam-cli (pip install aws-sam-cli, brew install aws-sam-cli)" sam --version
need cargo-lambda "$MIN_CARGO_LAMBDA" "install cargo-lambda (pip install cargo-lambda, brew install cargo-lambda/tap/cargo-lambda)" cargo-lambda lambda --version
zig_how="install zig (https://ziglang.org/download, brew install zig) or pip install ziglang"
if command -v zig >/dev/null; then
  need zig "$MIN_ZIG" "$zig_how" zig version
else
  # cargo-lambda (cargo-zigbuild) falls back to Python's ziglang package when no zig is on
  # PATH, with the Python that CARGO_ZIGBUILD_PYTHON_PATH names.
  for python in python3 "$TOOLS_DIR/deploy/bin/python3"; do
    if "$python" -m ziglang version >/dev/null 2>&1; then
      CARGO_ZIGBUILD_PYTHON_PATH=$(command -v "$python")
      export CARGO_ZIGBUILD_PYTHON_PATH
      break
    fi
  done
  [[ -n ${CARGO_ZIGBUILD_PYTHON_PATH:-} ]] || die "zig is not on PATH: $zig_how"
  need zig "$MIN_ZIG" "$zig_how" "$CARGO_ZIGBUILD_PYTHON_PATH" -m ziglang version
fi
command -v objdump >/dev/null || die "objdump is not on PATH: install binutils (or LLVM's llvm-objdump as objdump)"

# The standard library of the target: cargo-lambda builds for it, and rustup cannot be asked for
# it on machines without network access to its mirrors, so say what to run instead of failing
# deep inside the build.
sysroot=$(rustc --print sysroot)
if [[ ! -d $sysroot/lib/rustlib/$target/lib ]]; then
  die "Rust's standard library for $target is not installed (needed for --arch $arch): run \`rustup target add $target\`, or build another architecture with --arch and deploy with that Architecture"
fi

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# cargo-lambda picks the target from the template's Architectures (through SAM); a target from
# the caller's environment would send the build elsewhere.
unset CARGO_BUILD_TARGET

# Logical id and binary of every function in template.yaml (resources sit at two spaces).
mapfile -t listed < <(awk '
  /^  [A-Za-z0-9]+:$/ { resource = substr($1, 1, length($1) - 1) }
  /^        Binary: / { print resource " " $2 }
' template.yaml)
((${#listed[@]})) || die "template.yaml lists no function with BuildProperties: Binary"
resources=()
for entry in "${listed[@]}"; do
  read -r resource binary <<<"$entry"
  [[ -f functions/$binary/Cargo.toml ]] || die "$resource: functions/$binary has no crate"
  resources+=("$resource")
done

started=$(date +%s)
log "fetching the crates (Cargo.lock)"
cargo fetch --locked
export CARGO_NET_OFFLINE=true

log "sam build --beta-features for $arch ($target): ${resources[*]}"
sam build --beta-features --template template.yaml --config-file "$repo/infra/samconfig.toml" \
  --parameter-overrides "Architecture=$arch"

# provided.al2023 has glibc 2.34: a bootstrap that needs a newer symbol version fails to start,
# and one built for the other architecture does not start at all.
failed=0
for resource in "${resources[@]}"; do
  bootstrap=.aws-sam/build/$resource/bootstrap
  if [[ ! -f $bootstrap ]]; then
    log "$resource: no $bootstrap was built"; failed=1; continue
  fi
  size=$(du -h "$bootstrap" | cut -f1)
  if ! objdump -f "$bootstrap" | grep -qE "architecture: ${ELF_ARCH[$arch]}"; then
    log "$resource: $bootstrap ($size) is not an $arch binary: $(objdump -f "$bootstrap" | grep architecture)"
    failed=1; continue
  fi
  newest=$(objdump -T "$bootstrap" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  newest=${newest:-none}
  if [[ $newest != none ]] && ! at_least "$MAX_GLIBC" "$newest"; then
    log "$resource: $bootstrap ($size) needs glibc $newest, newer than provided.al2023's $MAX_GLIBC"
    failed=1
  else
    log "$resource: $bootstrap ($size, $arch) needs glibc $newest at most (<= $MAX_GLIBC): ok"
  fi
done

elapsed=$(($(date +%s) - started))
log "took $((elapsed / 60)) min $((elapsed % 60)) s"
((failed == 0)) || die "a bootstrap cannot run on provided.al2023 $arch (see above)"
log "ready: sam deploy --guided --config-file infra/samconfig.toml, with Architecture=$arch"

#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, starts the local stack, runs
# fmt, clippy and every test, and stops what it started — also when a step fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}

# Each step's line says how long the command has run so far (the steps' times are the differences).
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

step "install what is missing"
"$here/install.sh"

step "cargo fmt --check"
cargo fmt --all --check

step "start the local stack"
trap '"$here/stack.sh" stop' EXIT
"$here/stack.sh" start --fresh
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"

step "cfn-lint template.yaml; sam validate --lint (for each Architecture)"
TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
# Linters read a template's defaults: each architecture is linted as the default of a copy.
lint_dir=$(mktemp -d)
for arch in arm64 x86_64; do
  sed '/^  Architecture:$/,/^  [A-Za-z]/ s/^    Default: .*/    Default: '"$arch"'/' template.yaml >"$lint_dir/template-$arch.yaml"
  grep -q "^    Default: $arch\$" "$lint_dir/template-$arch.yaml" || { echo "test.sh: could not set Architecture=$arch" >&2; exit 1; }
  "$TOOLS_DIR/deploy/bin/cfn-lint" "$lint_dir/template-$arch.yaml"
  # SAM CLI reports telemetry unless told not to; nothing here may leave this machine.
  SAM_CLI_TELEMETRY=0 "$TOOLS_DIR/deploy/bin/sam" validate --lint --template "$lint_dir/template-$arch.yaml" --region us-east-1
done
rm -rf "$lint_dir"

step "the AWS suite's tools (infra/local/aws: translation, IAM emulator, simulator, schedules)"
# unittest prints its closing line (OK / FAILED) and exits non-zero on a failure.
PYTHONDONTWRITEBYTECODE=1 "$TOOLS_DIR/aws/bin/python" -m unittest discover -s "$here/aws" -p 'test_*.py'

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build --bins (the AWS suite runs the functions' binaries)"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked

step "API property test: schemathesis against tidemark serve (loopback only)"
# Where cargo put the binary: CARGO_TARGET_DIR and CARGO_BUILD_TARGET move it.
target_dir=${CARGO_TARGET_DIR:-$repo/target}
"$here/api-fuzz.sh" "$target_dir/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}debug/tidemark"
step "done: every step passed"

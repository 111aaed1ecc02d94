#!/usr/bin/env bash
# Installs what the local stack, the tests and the demo need and are missing. Idempotent and quick
# when everything is there. Run as root on Debian (apt-get); Rust, Python 3 and Node are assumed.
#
#   install.sh [--no-deploy-tools]
#
# - MariaDB server and client, mydumper, tzdata: Debian's packages.
# - moto's server (the AWS emulator): a pinned virtual environment in $TIDEMARK_TOOLS_DIR/moto.
# - schemathesis (the API property test): a pinned virtual environment in $TIDEMARK_TOOLS_DIR/schemathesis.
# - the deploy tools (cargo-lambda, cfn-lint, aws-sam-cli): a pinned virtual environment in
#   $TIDEMARK_TOOLS_DIR/deploy (cargo-lambda brings zig, the ziglang package); binutils (objdump)
#   from Debian's packages, for infra/deploy/build.sh's glibc check.
set -euo pipefail

TOOLS_DIR=${TIDEMARK_TOOLS_DIR:-$HOME/.cache/tidemark-tools}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MOTO_PINS=("moto[server]==5.2.5")
SCHEMATHESIS_PINS=("schemathesis==4.32.5")
DEPLOY_PINS=("cfn-lint==1.58.0" "aws-sam-cli==1.170.0" "cargo-lambda==1.9.2")
# aws-sam-cli 1.170.0 requires aws-sam-translator==1.115.0: bump the two together.
SAM_TRANSLATOR_PIN="aws-sam-translator==1.115.0"
AWS_SUITE_PINS=("$SAM_TRANSLATOR_PIN" "PyYAML==6.0.4" "boto3==1.44.8" "croniter==7.0.0" "tzdata==2026.6")
deploy_tools=1
for arg in "$@"; do
  case $arg in
    --no-deploy-tools) deploy_tools=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'install: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [[ $(id -u) != 0 ]]; then
    log "missing Debian packages: $* — run this script as root, or: sudo apt-get install $*"
    exit 1
  fi
  if [[ $apt_updated == 0 ]]; then apt-get update -qq; apt_updated=1; fi
  # policy-rc.d: do not start Debian's own mariadb service; the stack runs its own servers.
  local had_policy=0
  [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  [[ $had_policy == 1 ]] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  [[ $had_policy == 1 ]] || rm -f /usr/sbin/policy-rc.d
}

missing=()
command -v mariadbd >/dev/null || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
command -v mydumper >/dev/null || missing+=(mydumper)
[[ -d /usr/share/zoneinfo/Europe ]] || missing+=(tzdata)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# objdump: infra/deploy/build.sh checks the glibc versions the built functions need.
if [[ $deploy_tools == 1 ]]; then command -v objdump >/dev/null || missing+=(binutils); fi
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

venv() { # name pins...: a virtual environment holding exactly these pins
  local name=$1; shift
  local dir=$TOOLS_DIR/$name want="$*"
  if [[ -f $dir/.pins && $(cat "$dir/.pins") == "$want" ]]; then return 0; fi
  log "creating the $name virtual environment ($want)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@" >"$TOOLS_DIR/$name.log" 2>&1 \
    || { tail -n 20 "$TOOLS_DIR/$name.log" >&2; log "pip install for $name failed"; exit 1; }
  echo "$want" >"$dir/.pins"
}

npm_tools() { # name dir-with-package-lock: `npm ci` of that lock file, redone when it changes
  local name=$1 src=$2 dir=$TOOLS_DIR/$1 want
  want=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
  if [[ -f $dir/.lock-sha256 && $(cat "$dir/.lock-sha256") == "$want" ]]; then return 0; fi
  command -v npm >/dev/null || { log "npm is missing: install Node.js (20 or later)"; exit 1; }
  log "installing the $name npm packages (npm ci)"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund) >"$TOOLS_DIR/$name.log" 2>&1 \
    || { tail -n 20 "$TOOLS_DIR/$name.log" >&2; log "npm ci for $name failed"; exit 1; }
  echo "$want" >"$dir/.lock-sha256"
}

mkdir -p "$TOOLS_DIR"
venv moto "${MOTO_PINS[@]}"
venv schemathesis "${SCHEMATHESIS_PINS[@]}"
venv aws "${AWS_SUITE_PINS[@]}"
npm_tools aws-node "$here/aws"
if [[ $deploy_tools == 1 ]]; then
  venv deploy "${DEPLOY_PINS[@]}"
  # The translator sam validate uses must be the one the AWS suite translates with.
  sam_translator=$("$TOOLS_DIR/deploy/bin/python" -c \
    'from importlib.metadata import version; print("aws-sam-translator==" + version("aws-sam-translator"))')
  if [[ $sam_translator != "$SAM_TRANSLATOR_PIN" ]]; then
    log "aws-sam-cli brings $sam_translator but install.sh pins $SAM_TRANSLATOR_PIN: bump SAM_TRANSLATOR_PIN with DEPLOY_PINS"
    exit 1
  fi
fi
log "ready (tools in $TOOLS_DIR)"

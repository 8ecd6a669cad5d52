#!/usr/bin/env bash
# Controller bootstrap shared by the sandbox command (provision/platform.sh) and the test command
# (tests/run.sh). Idempotent; everything is cached in $GG_CACHE. Prints the venv path.
#
#   ansible/bootstrap.sh [--artifacts]   full (root): Debian packages for the test hosts and the
#                                        artifact builds, one venv ($GG_CACHE/venv) with our package
#                                        + Ansible tooling, the collections; --artifacts also builds
#                                        the local Kafka/MinIO artifacts
#   ansible/bootstrap.sh --controller    a remote deploy's controller (any user, no root, no apt):
#                                        Python >= 3.11, a venv ($GG_CACHE/controller-venv) with
#                                        ansible-core only, the collections from the `ansible` wheel
#
# $GG_CACHE defaults to /var/cache/gourmetgram, or ~/.cache/gourmetgram when that is not writable.
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=full
[[ ${1:-} == --controller ]] && mode=controller
log() { printf '[bootstrap] %s\n' "$*" >&2; }
if [[ -z ${GG_CACHE:-} ]]; then
  GG_CACHE=/var/cache/gourmetgram
  mkdir -p "$GG_CACHE" 2>/dev/null && [[ -w $GG_CACHE ]] || GG_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gourmetgram
fi
export GG_CACHE
mkdir -p "$GG_CACHE"
py=${GG_PYTHON:-}
if [[ -z $py ]]; then
  for cand in python3.11 python3.12 python3.13 python3; do command -v "$cand" >/dev/null && { py=$cand; break; }; done
fi
[[ -n $py ]] || { log "no python3 found: install Python >= 3.11"; exit 1; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { log "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); Ansible needs >= 3.11"; exit 1; }
"$py" -c 'import venv, ensurepip' 2>/dev/null ||
  { log "$py has no venv/ensurepip module (Debian/Ubuntu: the python3-venv package)"; exit 1; }
sha() { "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])'; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

if [[ $mode == full ]]; then
  # Test hosts (systemd-nspawn), their network, SSH, and the artifact builds.
  apt_install debootstrap systemd-container nftables iproute2 openssh-client rsync curl ca-certificates \
    python3-venv maven openjdk-17-jre-headless chromium
  venv=${GG_VENV:-$GG_CACHE/venv}
  stamp=$(cat "$repo/pyproject.toml" "$repo/ansible/requirements.txt" "$repo/ansible/requirements-controller.txt" | sha)
  install=(-e "$repo[dev]" -r "$repo/ansible/requirements.txt")
else
  command -v ssh >/dev/null || { log "no ssh client found (OpenSSH)"; exit 1; }
  venv=${GG_VENV:-$GG_CACHE/controller-venv}
  stamp=$(cat "$repo/ansible/requirements-controller.txt" | sha)
  install=(-r "$repo/ansible/requirements-controller.txt")
fi

if [[ ! -x $venv/bin/python || $(cat "$venv/.gg-stamp" 2>/dev/null) != "$stamp" ]]; then
  t0=$SECONDS
  log "creating $venv with $($py --version 2>&1)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip
  "$venv/bin/pip" install -q "${install[@]}"
  echo "$stamp" >"$venv/.gg-stamp"
  log "venv ready in $((SECONDS - t0)) s"
elif [[ $mode == full ]]; then
  "$venv/bin/pip" install -q --no-deps -e "$repo"
fi
PIP="$venv/bin/pip" PYTHON="$venv/bin/python" "$repo/ansible/collections.sh" >/dev/null
if [[ ${1:-} == --artifacts ]]; then
  "$repo/ansible/artifacts/build.sh" >/dev/null
fi
echo "$venv"

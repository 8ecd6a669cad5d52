#!/usr/bin/env bash
# Controller bootstrap shared by the sandbox command (provision/platform.sh) and the test command
# (tests/run.sh): Debian packages, one Python venv with our package + Ansible tooling, the
# Ansible collections (offline, from the `ansible` wheel) and, with --artifacts, the local
# Kafka/MinIO artifacts. Idempotent; everything is cached in $GG_CACHE. Prints the venv path.
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GG_CACHE=${GG_CACHE:-/var/cache/gourmetgram}
venv=${GG_VENV:-$GG_CACHE/venv}
py=${GG_PYTHON:-}
if [[ -z $py ]]; then
  for cand in python3.11 python3.12 python3; do command -v "$cand" >/dev/null && { py=$cand; break; }; done
fi
log() { printf '[bootstrap] %s\n' "$*" >&2; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Test hosts (systemd-nspawn), their network, SSH, and the artifact builds.
apt_install debootstrap systemd-container nftables iproute2 openssh-client rsync curl ca-certificates \
  python3-venv maven openjdk-17-jre-headless chromium

stamp=$(cat "$repo/pyproject.toml" "$repo/ansible/requirements.txt" | sha256sum | cut -c1-16)
if [[ ! -x $venv/bin/python || $(cat "$venv/.gg-stamp" 2>/dev/null) != "$stamp" ]]; then
  t0=$SECONDS
  log "creating $venv with $($py --version 2>&1)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip
  "$venv/bin/pip" install -q -e "$repo[dev]" -r "$repo/ansible/requirements.txt"
  echo "$stamp" >"$venv/.gg-stamp"
  log "venv ready in $((SECONDS - t0)) s"
else
  "$venv/bin/pip" install -q --no-deps -e "$repo"
fi
PIP="$venv/bin/pip" "$repo/ansible/collections.sh" >/dev/null
if [[ ${1:-} == --artifacts ]]; then
  "$repo/ansible/artifacts/build.sh" >/dev/null
fi
echo "$venv"

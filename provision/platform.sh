#!/usr/bin/env bash
# Bring the whole platform up with one command.
#
#   provision/platform.sh up                                   # local sandbox (default)
#   provision/platform.sh up --inventory inventory/chameleon.yml   # a Chameleon host (lease.py up wrote it)
#   provision/platform.sh status [--inventory FILE]
#   provision/platform.sh down                                 # remove the local sandbox host
#
# The sandbox is a Debian 12 systemd test host (systemd-nspawn, own network namespace) on this
# machine, deployed with the offline-capable choices: Apache Kafka and MinIO from locally built
# artifacts, the generated sample image set instead of Food-11. On Chameleon the same site.yml
# installs from the official sources (Apache Kafka and MinIO releases, Food-11 download).
# Extra arguments after the options go to ansible-playbook (e.g. -e gourmetgram_inference_mode=model).
# The sandbox needs root (a bridge and a systemd-nspawn host). A remote deploy (--inventory) runs as
# any user with only Python >= 3.11 (with venv) and an ssh client: no root, no apt, no Linux-only
# tool; its venv and caches live in ~/.cache/gourmetgram unless /var/cache/gourmetgram is writable.
# Idempotent: running `up` again converges and reports changed=0.
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ -z ${GG_CACHE:-} ]]; then
  GG_CACHE=/var/cache/gourmetgram
  mkdir -p "$GG_CACHE" 2>/dev/null && [[ -w $GG_CACHE ]] || GG_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gourmetgram
fi
export GG_CACHE
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$GG_CACHE/ansible-collections}
lab=${GG_SANDBOX_LAB:-sandbox}
sandbox_inventory=${GG_SANDBOX_INVENTORY:-inventory/sandbox.yml}

cmd=${1:-}
shift || true
inventory=""
extra=()
while (($#)); do
  case $1 in
    --inventory | -i) inventory=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
[[ -n $inventory ]] || inventory=$sandbox_inventory
sandbox=false
[[ $inventory == "$sandbox_inventory" ]] && sandbox=true

step=0
total=5
progress() { step=$((step + 1)); printf '\n\033[1m[%d/%d] %s\033[0m (%s)\n' "$step" "$total" "$*" "$(date +%H:%M:%S)"; }
die() { echo "error: $*" >&2; exit 1; }

if $sandbox; then
  [[ $(id -u) == 0 ]] || die "run as root (the sandbox creates a network bridge and a systemd-nspawn host); a remote deploy (--inventory FILE) needs no root"
  venv_default=$GG_CACHE/venv
else
  venv_default=$GG_CACHE/controller-venv
fi

testbed() { "$venv/bin/python" ansible/testbed/testbed.py "$@"; }

lab_running() { testbed list 2>/dev/null | "$venv/bin/python" -c '
import json, sys
labs = {l["lab"]: l for l in json.load(sys.stdin)}
lab = labs.get(sys.argv[1])
sys.exit(0 if lab and all(h.get("running") for h in lab["hosts"]) else 1)' "$lab"; }

host_address() {
  "$venv/bin/ansible-inventory" -i "$inventory" --list | "$venv/bin/python" -c '
import json, sys
inv = json.load(sys.stdin)
host = (inv.get("app", {}).get("hosts") or inv["gourmetgram"]["hosts"] if "gourmetgram" in inv else inv["all"]["hosts"])[0]
hv = inv["_meta"]["hostvars"][host]
print(host, hv.get("gourmetgram_public_address") or hv["ansible_host"])'
}

summary() {
  read -r host address < <(host_address)
  local secrets="${GG_SECRETS_DIR:-$HOME/.local/share/gourmetgram/$(deployment_name)}"
  cat <<EOF

GourmetGram is up on $host ($address):
  FastAPI docs        http://$address:8000/docs
  Airflow             http://$address:8080
  Adminer             http://$address:5050
  Kafka console       http://$address:8090
  Redis browser       http://$address:8081
  MinIO console       http://$address:9001
  Iceberg browser     http://$address:3000
  Jupyter             http://$address:8888
Credentials (generated for this deployment, 0600, never printed): $secrets/
  UI logins summary:  $secrets/ui-credentials.txt
On the host:          ssh ... $address, then: sudo gourmetgram simulate-viral
EOF
  echo
  echo "systemctl status gourmetgram-*:"
  "$venv/bin/ansible" -i "$inventory" "$host" -m ansible.builtin.command \
    -a "systemctl list-units --no-legend --plain gourmetgram-* --all" -o 2>/dev/null |
    sed 's/ | CHANGED | rc=0 | (stdout) /\n/; s/\\n/\n/g' | sed 's/^/  /' || true
  # A unit that gave up: its own last lines, so the reader sees why without another login.
  "$venv/bin/ansible" -i "$inventory" "$host" -b -m ansible.builtin.shell -a '
    for u in $(systemctl list-units --no-legend --plain --state=failed "gourmetgram-*" | cut -d" " -f1); do
      echo "$u failed; its last lines (journalctl -u $u):"; journalctl -u "$u" -n 20 --no-pager -o short-iso
    done' 2>/dev/null | sed '1d; s/^/  /' || true
}

deployment_name() { if $sandbox; then echo sandbox; else basename "$inventory" .yml; fi; }

case $cmd in
  up)
    progress "controller tools (venv, Ansible collections$($sandbox && echo ', local Kafka/MinIO artifacts'))"
    if $sandbox; then venv=$(ansible/bootstrap.sh); else venv=$(ansible/bootstrap.sh --controller); fi
    if $sandbox; then
      # Offline-capable choices: Kafka and MinIO from the local artifacts, the generated sample images.
      eval "$(ansible/artifacts/build.sh)"
      extra=(-e "kafka_local_artifact=$GG_KAFKA_TARBALL" -e "minio_local_artifact=$GG_MINIO_BINARY"
        -e gourmetgram_dataset=sample "${extra[@]}")
    fi
    if $sandbox; then
      progress "sandbox host '$lab' (Debian 12 under systemd-nspawn)"
      if lab_running; then
        echo "already running; rewriting $sandbox_inventory"
        testbed inventory --lab "$lab" --output "$sandbox_inventory" >/dev/null
      else
        testbed destroy --lab "$lab" >/dev/null 2>&1 || true
        testbed create --lab "$lab" --hosts 1 --inventory "$sandbox_inventory" >/dev/null
      fi
    else
      [[ -f $inventory ]] || die "$inventory not found (python provision/lease.py up writes inventory/chameleon.yml)"
      progress "target from $inventory"
    fi
    progress "deploy site.yml (first run takes several minutes; reruns converge quickly)"
    t0=$SECONDS
    ANSIBLE_DISPLAY_SKIPPED_HOSTS=false "$venv/bin/ansible-playbook" -i "$inventory" site.yml \
      -e gourmetgram_deployment="$(deployment_name)" "${extra[@]}"
    echo "site.yml finished in $((SECONDS - t0)) s"
    progress "summary"
    summary
    ;;
  status)
    venv=${GG_VENV:-$venv_default}
    [[ -x $venv/bin/python ]] || die "not bootstrapped yet: run '$0 up'"
    total=1
    progress "status"
    summary
    ;;
  down)
    venv=${GG_VENV:-$venv_default}
    $sandbox || die "down removes the local sandbox only; for Chameleon use: python provision/lease.py down"
    "$venv/bin/python" ansible/testbed/testbed.py destroy --lab "$lab"
    rm -f "$sandbox_inventory"
    echo "sandbox removed (generated credentials kept in ~/.local/share/gourmetgram/sandbox)"
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

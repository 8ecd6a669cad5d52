#!/usr/bin/env bash
# Offline replacement for `ansible-galaxy collection install`: Galaxy is unreachable from the
# test/CI machines, PyPI is not. Downloads the pinned `ansible` community wheel (cached in
# $GG_CACHE) and extracts only the collections the roles use into $GG_CACHE/ansible-collections,
# the collections_path of ansible.cfg and of the molecule scenarios. Prints the path.
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
ANSIBLE_WHEEL_VERSION=${ANSIBLE_WHEEL_VERSION:-12.3.0}   # ansible 12.x <=> ansible-core 2.19.x
COLLECTIONS=(community/postgresql community/general ansible/posix)
cache=${GG_CACHE:-/var/cache/gourmetgram}
python=${PYTHON:-python3}
dest="$cache/ansible-collections"
wheels="$cache/wheels"
digest=$(printf '%s\n' "${COLLECTIONS[@]}" | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])')
stamp="$dest/.from-ansible-$ANSIBLE_WHEEL_VERSION-$digest"
pip=${PIP:-pip}
command -v "$pip" >/dev/null || pip="$python -m pip"
if [[ ! -e $stamp ]]; then
  mkdir -p "$wheels"
  whl="$wheels/ansible-$ANSIBLE_WHEEL_VERSION-py3-none-any.whl"
  if [[ ! -s $whl ]]; then
    $pip download --quiet --no-deps --only-binary=:all: "ansible==$ANSIBLE_WHEEL_VERSION" -d "$wheels" >&2
  fi
  tmp=$(mktemp -d "$cache/.collections.XXXXXX")
  patterns=()
  for c in "${COLLECTIONS[@]}"; do patterns+=("ansible_collections/$c/*"); done
  "$python" - "$whl" "$tmp" "${patterns[@]}" <<'PY'
import fnmatch, sys, zipfile
whl, out, *pats = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if any(fnmatch.fnmatch(n, p) for p in pats)]
    z.extractall(out, names)
print(f"extracted {len(names)} files", file=sys.stderr)
PY
  rm -rf "$dest.old"
  [[ -d $dest ]] && mv "$dest" "$dest.old"
  mv "$tmp" "$dest"
  rm -rf "$dest.old"
  touch "$stamp"
fi
echo "$dest"

#!/usr/bin/env bash
# Builds the `gourmetgram` wheel from THIS checkout on the controller, once per source state.
#
# The wheel lands in $GG_WHEEL_DIR (default $GG_CACHE/wheels/gourmetgram, or
# ~/.cache/gourmetgram/wheels/gourmetgram when the shared cache is not writable) under a directory
# named after a digest of the package sources (pyproject.toml + services/, bytecode excluded), so
#   - a rerun with unchanged sources does nothing and prints the same path;
#   - the roles copy it to hosts under that digest, which makes "new code" a new path (the package
#     version stays 0.1.0, so pip alone could not tell two builds apart).
# The build runs in a scratch copy of the sources: the shared checkout gets no build/ or egg-info.
# Prints JSON: {"wheel": PATH, "digest": HEX, "built": true|false}. GG_WHEEL=PATH: use that wheel.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${GG_CACHE:-/var/cache/gourmetgram}
if [[ -z ${GG_WHEEL_DIR:-} ]]; then
  if mkdir -p "$cache/wheels/gourmetgram" 2>/dev/null && [[ -w $cache/wheels/gourmetgram ]]; then
    GG_WHEEL_DIR=$cache/wheels/gourmetgram
  else
    GG_WHEEL_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/gourmetgram/wheels/gourmetgram
  fi
fi
python=${PYTHON:-python3}
# sha256sum's output format ("HEX  -"), without coreutils (the same script runs on a macOS controller)
sha256() { "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest() + "  -")'; }

# GG_WHEEL pins an already built wheel (tests on a checkout others keep editing: every run of the
# test then deploys the same code, so idempotence checks compare like with like).
if [[ -n ${GG_WHEEL:-} ]]; then
  [[ -f $GG_WHEEL ]] || { echo "[build-wheel] GG_WHEEL=$GG_WHEEL does not exist" >&2; exit 1; }
  printf '{"wheel": "%s", "digest": "%s", "built": false}\n' "$GG_WHEEL" "$(sha256 <"$GG_WHEEL" | cut -c1-16)"
  exit 0
fi

cd "$repo"
# Sources that go into the wheel: pyproject.toml, README.md if present, services/ (tracked or not:
# the checkout under test is what gets deployed), without bytecode and editable-install leftovers.
# (no mapfile: bash 3.2 on macOS)
files=()
while IFS= read -r f; do files+=("$f"); done < <(
  { printf '%s\n' pyproject.toml; [[ -f README.md ]] && echo README.md
    find services -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' ! -path '*.egg-info/*'; } | LC_ALL=C sort
)
digest=$(for f in "${files[@]}"; do printf '%s\0' "$f"; sha256 <"$f"; done | sha256 | cut -c1-16)
out="$GG_WHEEL_DIR/$digest"
whl=$(compgen -G "$out/gourmetgram-*.whl" | head -n1 || true)
if [[ -n $whl ]]; then
  printf '{"wheel": "%s", "digest": "%s", "built": false}\n' "$whl" "$digest"
  exit 0
fi

mkdir -p "$GG_WHEEL_DIR"
scratch=$(mktemp -d "$GG_WHEEL_DIR/.build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/src"
tar -cf - "${files[@]}" | tar -C "$scratch/src" -xf -
t0=$SECONDS
# Fixed timestamps: the same sources give byte-identical wheels (SOURCE_DATE_EPOCH is honoured by bdist_wheel).
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps --wheel-dir "$scratch/dist" "$scratch/src" >&2
mkdir -p "$scratch/final"
mv "$scratch"/dist/gourmetgram-*.whl "$scratch/final/"
rm -rf "$out"
mv "$scratch/final" "$out"
whl=$(compgen -G "$out/gourmetgram-*.whl" | head -n1)
# Builds of source states older than a day are dropped (a pinned GG_WHEEL is normally younger).
find "$GG_WHEEL_DIR" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -mtime +1 -exec rm -rf {} +
echo "[build-wheel] built $(basename "$whl") ($digest) in $((SECONDS - t0)) s" >&2
printf '{"wheel": "%s", "digest": "%s", "built": true}\n' "$whl" "$digest"

#!/usr/bin/env bash
# The project's test command (README "Run the tests"). On a fresh Debian 12 machine, as root:
#
#   tests/run.sh            # every stage: setup lint unit integration airflow testbed molecule deploy
#   tests/run.sh unit       # one or more stages (`all` = every stage; `sandbox`: the lab on the sandbox)
#
# It installs what it needs (apt packages, a venv, Ansible collections, the Kafka/MinIO local
# artifacts, Airflow), starts the loopback servers, and prints each stage's duration. Downloads
# and builds are cached in $GG_CACHE (default /var/cache/gourmetgram), so reruns are fast.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export GG_CACHE=${GG_CACHE:-/var/cache/gourmetgram}
export GG_INFRA_DIR=${GG_INFRA_DIR:-/tmp/gg-infra}
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$GG_CACHE/ansible-collections}
export PIP_DISABLE_PIP_VERSION_CHECK=1
export GG_NO_SKIPS=1  # a skipped test fails the run (tests/conftest.py)
venv=${GG_VENV:-$GG_CACHE/venv}
export GG_VENV=$venv
all_stages=(setup lint unit integration airflow testbed molecule deploy)
stages=("${@:-${all_stages[@]}}")
[[ ${stages[0]} == all ]] && stages=("${all_stages[@]}")
declare -a timings=()
failed=0

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stage_setup() {
  # The tests run their own server instances on other ports; packaged ones that Debian may have
  # started are left alone.
  ansible/bootstrap.sh --artifacts >/dev/null
  tests/infra/servers.sh install
  tests/infra/servers.sh start
  tests/infra/airflow.sh install
  tests/infra/airflow.sh dbinit
}

pytest_run() { "$venv/bin/python" -m pytest "$@"; }

stage_lint() {
  "$venv/bin/ruff" check .
  "$venv/bin/ruff" format --check .
  "$venv/bin/ansible-playbook" -i inventory/example.yml --syntax-check site.yml
  "$venv/bin/ansible-lint" -c ansible/ansible-lint.yml --offline
}

stage_unit() { pytest_run -q -m "not integration and not airflow and not testbed and not e2e"; }

stage_integration() {
  tests/infra/servers.sh start >/dev/null
  pytest_run -q -m integration
}

stage_airflow() {
  tests/infra/servers.sh start >/dev/null
  pytest_run -q -m airflow
}

stage_testbed() {
  # The test-host tool itself: create, ssh, reboot and destroy real systemd-nspawn hosts.
  pytest_run -q -p no:cacheprovider tests/testbed/test_testbed_tool.py
}

stage_molecule() {
  tests/infra/servers.sh stop >/dev/null  # not used from here on: their CPU goes to the test hosts
  # Every role's molecule scenario (converge, idempotence, verify) on a fresh test host.
  # Scenarios run side by side (each on its own host and lab); GG_MOLECULE_WORKERS sets how many.
  pytest_run -q -p no:cacheprovider --durations=0 -n "${GG_MOLECULE_WORKERS:-3}" --dist load tests/testbed/test_molecule.py
}

stage_deploy() {
  # One deployment, on the user's path: the README's Chameleon section on the twin
  # (tests/chameleon/session.py: lease.py up against the fake KVM@TACC whose server is a real
  # Chameleon-shaped host, floating IP by DNAT, user cc; platform.sh up --inventory by an
  # unprivileged user, Kafka and MinIO from the airgap mirror). On that host: the twin's checks, the
  # lab steps 3-8, the UIs in headless Chromium through the floating IP (GG_DEPLOY_UI=0 leaves them
  # out), the site checks (second run changed=0, SIGKILL, reboot). The README's other command, the
  # sandbox's `platform.sh up`, runs in the background from lab step 6 on; after step 8
  # tests/e2e/test_sandbox.py checks it and takes it down (two idle platforms would slow the UI
  # tests on 2 cores). lease.py down ends the stage. `-s` shows progress as it happens.
  local files=(tests/chameleon/test_twin.py tests/e2e/test_lab.py tests/e2e/test_sandbox.py)
  [[ ${GG_DEPLOY_UI:-1} == 1 ]] && files+=(tests/testbed/test_ui_browser.py)
  files+=(tests/testbed/test_site.py tests/chameleon/test_twin_down.py)
  tests/infra/servers.sh stop >/dev/null  # the loopback servers of the earlier stages: CPU for the hosts
  GG_DEPLOY_TWIN=1 GG_DEPLOY_SHARED=1 pytest_run -q -s -p no:cacheprovider --durations=0 "${files[@]}"
}

stage_sandbox() {
  # Not in `all`: the same lab, UI and site tests on the local sandbox host instead of the twin.
  local files=(tests/e2e/test_lab.py)
  [[ ${GG_DEPLOY_UI:-1} == 1 ]] && files+=(tests/testbed/test_ui_browser.py)
  files+=(tests/testbed/test_site.py)
  GG_DEPLOY_SHARED=1 pytest_run -q -s -p no:cacheprovider --durations=0 "${files[@]}"
}

for s in "${stages[@]}"; do
  declare -F "stage_$s" >/dev/null || { echo "unknown stage $s (stages: ${all_stages[*]})" >&2; exit 2; }
done
if [[ ${stages[0]} != setup && ! -x $venv/bin/python ]]; then stages=(setup "${stages[@]}"); fi
# Without setup, still point the venv's editable install at this checkout (another clone may own it).
if [[ ${stages[0]} != setup ]]; then "$venv/bin/pip" install -q --no-deps -e "$repo" >/dev/null; fi

for s in "${stages[@]}"; do
  say "stage $s"
  t0=$SECONDS
  # A subshell outside any conditional, so `set -e` holds inside the stage.
  set +e
  (
    set -Ee
    trap 'echo "stage $s: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
    "stage_$s"
  )
  rc=$?
  set -e
  if ((rc != 0)); then failed=1; timings+=("$s: FAILED (exit $rc) after $((SECONDS - t0)) s"); break; fi
  timings+=("$s: $((SECONDS - t0)) s")
done

say "stage timings"
printf '  %s\n' "${timings[@]}"
exit $failed

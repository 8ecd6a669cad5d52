"""One freshly deployed sandbox host, shared by the deployment test modules of one pytest session.

The host is brought up exactly as the README tells a newcomer: ``provision/platform.sh up`` (a
fresh Debian 12 systemd-nspawn host, Kafka and MinIO from the local artifacts, the sample dataset).
``tests/e2e/test_lab.py`` always runs on it (or, with ``GG_DEPLOY_TWIN=1`` as in ``tests/run.sh
deploy``, on the Chameleon twin's host); with ``GG_DEPLOY_SHARED=1``
the UI browser test and then the site checks run on the same host afterwards instead of deploying
hosts of their own: the lab steps leave the data the UI pages show, and the site checks (second
run changed=0, SIGKILL, reboot) end the session.

    GG_E2E_LAB   lab name (default e2e)
    GG_E2E_DIR   work dir for secrets and logs (default /tmp/gg-e2e-<lab>)
    GG_E2E_KEEP=1   keep the host afterwards
    GG_E2E_REUSE=1  run on a kept host without deploying (for developing tests only)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests import polling

ROOT = Path(__file__).resolve().parents[1]
LAB = os.environ.get("GG_E2E_LAB", "e2e")
KEEP = os.environ.get("GG_E2E_KEEP") == "1"
REUSE = os.environ.get("GG_E2E_REUSE") == "1"


def shared() -> bool:
    """Whether the UI and site test modules use the shared host (tests/run.sh deploy sets it)."""
    return os.environ.get("GG_DEPLOY_SHARED") == "1"


def log(msg: str) -> None:
    print(f"[deploy {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def recap_changed(output: str) -> dict[str, int]:
    """changed= per host from an ansible-playbook PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


class Sandbox:
    """The deployed host: platform.sh commands, SSH, psql and the generated secrets."""

    bring_up = "provision/platform.sh up"  # the command that deployed it, as the README gives it

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lab = LAB
        # Generated inventories live in inventory/ beside group_vars/, as platform.sh writes them.
        self.inventory = ROOT / "inventory" / f"{LAB}.yml"
        self.secrets = work / "secrets"
        self.env = dict(
            os.environ,
            GG_SANDBOX_LAB=LAB,
            GG_SANDBOX_INVENTORY=str(self.inventory),
            GG_SECRETS_DIR=str(self.secrets),
            ANSIBLE_FORCE_COLOR="0",
        )
        self.address = ""
        self.host = ""
        self.timings: dict[str, float] = {}
        self.deploy_output = ""  # what the bring-up printed (lab step 3)
        # The -e arguments of the last `up`: a rerun with the same ones must change nothing.
        self.up_args: tuple[str, ...] = ()

    def command(self, *args: str, label: str) -> str:
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(ROOT / "provision" / "platform.sh"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=3000,
            check=False,
        )
        self.timings[label] = round(time.monotonic() - t0, 1)
        (self.work / f"{label.replace(' ', '-')}.log").write_text(proc.stdout + proc.stderr)
        log(f"{label}: {self.timings[label]} s (exit {proc.returncode})")
        assert proc.returncode == 0, (
            f"platform.sh {' '.join(args)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}"
        )
        return proc.stdout

    def up(self, *extra: str, label: str) -> str:
        out = self.command("up", *extra, label=label)
        self.up_args = extra
        return out

    def ssh(self, command: str, check: bool = True, timeout: float = 600) -> str:
        proc = self.ssh_proc(command, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{command!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def ssh_proc(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        testbed = ROOT / "ansible" / "testbed" / "testbed.py"
        return subprocess.run(
            [sys.executable, str(testbed), "ssh", "--lab", self.lab, "--host", self.host, "--", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def psql(self, sql: str) -> list[list[str]]:
        out = self.ssh(f"runuser -u postgres -- psql -d gourmetgram -AtF '|' -c {_q(sql)}")
        return [line.split("|") for line in out.splitlines() if line]

    def gourmetgram(self, *args: str) -> str:
        return self.ssh("gourmetgram " + " ".join(_q(a) for a in args))

    def stats(self) -> dict[str, Any]:
        return json.loads(self.gourmetgram("stats"))

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    def redis(self, *commands: str) -> str:
        """redis-cli commands on the host, with the stream consumer's own settings (a root-only env
        file); each command may end in a shell pipe. Their outputs are concatenated."""
        prelude = (
            "set -a; . /etc/gourmetgram/stream-consumer.env; set +a; export REDISCLI_AUTH=$REDIS_PASSWORD;"
            ' _cli="redis-cli --no-auth-warning -h $REDIS_HOST -p $REDIS_PORT"'
        )
        return self.ssh("; ".join([prelude, *(f"$_cli {c}" for c in commands)]))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 3.0) -> Any:
    """tests.polling.wait_for at a pace fit for commands over SSH."""
    return polling.wait_for(predicate, timeout, what, interval)


def deploy() -> Iterator[Sandbox]:
    """Generator behind the session fixture `sandbox` (tests/conftest.py)."""
    # A stable work dir (secrets, logs) per lab, so that GG_E2E_REUSE finds the kept host's secrets.
    work = Path(os.environ.get("GG_E2E_DIR", f"/tmp/gg-e2e-{LAB}"))
    if not REUSE and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    s = Sandbox(work)
    if not REUSE:  # a fresh host unless a developer asks to reuse one
        subprocess.run(
            [sys.executable, str(ROOT / "ansible/testbed/testbed.py"), "destroy", "--lab", LAB],
            capture_output=True,
            check=False,
        )
    try:
        out = s.command("status", label="status") if REUSE else s.up(label="deploy")
        s.deploy_output = out
        m = re.search(r"GourmetGram is up on (\S+) \(([\d.]+)\)", out)
        assert m, out[-3000:]
        s.host, s.address = m.group(1), m.group(2)
        if REUSE:
            s.up_args = ("-e", "gourmetgram_inference_mode=model")
        log(f"deployed on {s.host} ({s.address})")
        yield s
    finally:
        log(f"timings (s): {json.dumps(s.timings)}")
        if not KEEP:
            subprocess.run([str(ROOT / "provision/platform.sh"), "down"], env=s.env, capture_output=True, check=False)


class BackgroundBringUp:
    """The sandbox's bring-up (``provision/platform.sh up``) run behind other tests: started when
    the fixture is first asked for, finished by ``wait()``. The Chameleon twin's lab (tests/run.sh
    deploy) starts it beside its long waits, so one CI stage proves both of the README's commands."""

    def __init__(self, work: Path) -> None:
        self.sandbox = Sandbox(work)
        self.log = work / "deploy.log"
        self.t0 = time.monotonic()
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / "provision" / "platform.sh"), "up"],
                cwd=ROOT,
                env=self.sandbox.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        log(f"sandbox bring-up started in the background (log {self.log})")

    def wait(self, timeout: float) -> Sandbox:
        s = self.sandbox
        if s.host:
            return s
        rc = self.proc.wait(timeout=timeout)
        s.timings["deploy"] = round(time.monotonic() - self.t0, 1)
        out = self.log.read_text()
        log(f"sandbox bring-up: {s.timings['deploy']} s (exit {rc}), beside other tests")
        assert rc == 0, f"platform.sh up failed ({rc}):\n{out[-5000:]}"
        s.deploy_output = out
        m = re.search(r"GourmetGram is up on (\S+) \(([\d.]+)\)", out)
        assert m, out[-3000:]
        s.host, s.address = m.group(1), m.group(2)
        return s

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=60)


def in_background() -> Iterator[BackgroundBringUp]:
    """Generator behind the session fixture `sandbox_bring_up` (tests/conftest.py)."""
    work = Path(os.environ.get("GG_E2E_DIR", f"/tmp/gg-e2e-{LAB}"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(ROOT / "ansible/testbed/testbed.py"), "destroy", "--lab", LAB],
        capture_output=True,
        check=False,
    )
    bg = BackgroundBringUp(work)
    try:
        yield bg
    finally:
        bg.stop()
        if not KEEP:
            subprocess.run(
                [str(ROOT / "provision/platform.sh"), "down"], env=bg.sandbox.env, capture_output=True, check=False
            )

"""One Chameleon twin deployment per pytest session (issue 11): the README's "Running on Chameleon"
section as a student runs it, against a KVM@TACC whose servers are real hosts.

1. ``provision/lease.py up`` (its real code, in this process, against tests/chameleon/cloud.py):
   lease, server (a Chameleon-shaped systemd-nspawn host booting), security groups, a floating IP
   that reaches the host only through DNAT, and inventory/chameleon.yml once SSH answers.
2. ``provision/platform.sh up --inventory inventory/chameleon.yml`` run by an unprivileged
   controller user (``gg-student``: no root, no sudo, nothing from apt; a Python with venv and
   an ssh client), deploying as ``cc`` with sudo through the floating IP.

The session fixture ``chameleon_twin`` (tests/conftest.py) yields the deployed host; with
``GG_DEPLOY_TWIN=1`` (tests/run.sh deploy) it is also the session's ``sandbox``, so the lab guide,
the UI tests and the site checks run on it.
tests/chameleon/test_twin_down.py ends the session with ``lease.py down``; if it does not run,
the fixture's finalizer still leaves nothing behind (GG_TWIN_KEEP=1 keeps the host, for
developing tests only).

What only the twin shows (README): the host is Debian 12 under systemd-nspawn, not Ubuntu 24.04
on KVM; the images come from the generated sample set, and Kafka and MinIO from an airgap mirror
serving the local builds at the official URL paths (tests/chameleon/mirror.py), because this
machine reaches no download site.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from tests.chameleon.cloud import ROOT, TwinKvmTacc, load_testbed
from tests.chameleon.mirror import Mirror
from tests.deployed import Sandbox, recap_changed

STUDENT = "gg-student"  # the controller user: no root, no sudo
KEY_NAME = "my-chameleon-key"
INVENTORY = "inventory/chameleon.yml"
# The README's Chameleon bring-up, verbatim; every platform.sh command of the twin names the inventory.
BRING_UP = f"provision/platform.sh up --inventory {INVENTORY}"
TIMINGS: dict[str, float] = {}
KEEP = os.environ.get("GG_TWIN_KEEP") == "1"  # keep the host afterwards (for developing tests only)


def log(msg: str) -> None:
    print(f"[twin {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[label] = round(time.monotonic() - t0, 1)
        log(f"{label}: {TIMINGS[label]} s")


class Student:
    """An unprivileged controller user with a copy of the repository in their home."""

    def __init__(self) -> None:
        if subprocess.run(["id", STUDENT], capture_output=True, check=False).returncode != 0:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", STUDENT], check=True)
        pw = pwd.getpwnam(STUDENT)
        self.uid, self.home = pw.pw_uid, Path(pw.pw_dir)
        self.repo = self.home / "gourmetgram"
        self.key = self.home / ".ssh" / "id_chameleon"

    def run(self, command: str, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
        """A login shell of the student: their HOME and a plain PATH, nothing of root's environment."""
        env = ["env", "-i", f"HOME={self.home}", f"USER={STUDENT}", "LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin"]
        return subprocess.run(
            ["runuser", "-u", STUDENT, "--", *env, "bash", "-c", f"cd {self.repo} && {command}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def checkout(self) -> None:
        """This checkout's files (as committed or edited), owned by the student; their caches stay."""
        if self.repo.exists():
            shutil.rmtree(self.repo)
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.split(b"\0")  # fmt: skip
        for rel in filter(None, files):
            src = ROOT / rel.decode()
            if src.is_file():
                dst = self.repo / rel.decode()
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        (self.repo / "inventory").mkdir(exist_ok=True)
        if not self.key.exists():
            self.key.parent.mkdir(mode=0o700, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        subprocess.run(["chown", "-R", f"{STUDENT}:{STUDENT}", str(self.repo), str(self.key.parent)], check=True)


def artifacts() -> dict[str, str]:
    """The local Kafka/MinIO artifacts (ansible/artifacts/build.sh, built in the setup stage), as
    the NAME=PATH lines that platform.sh evaluates."""
    out = subprocess.run([str(ROOT / "ansible/artifacts/build.sh")], capture_output=True, text=True, check=True).stdout
    found = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("GG_"))
    assert {"GG_KAFKA_TARBALL", "GG_MINIO_BINARY"} <= set(found), out
    return found


class TwinHost(Sandbox):
    """The twin's host. SSH (testbed.py ssh) reaches it as cc through the floating IP, then sudo;
    platform.sh runs as the student with the README's --inventory, never as root."""

    bring_up = BRING_UP

    def __init__(self, student: Student, cloud: TwinKvmTacc) -> None:
        super().__init__(student.home / "twin-work")
        self.work.mkdir(exist_ok=True)
        self.student, self.cloud = student, cloud
        self.inventory = student.repo / INVENTORY
        # where platform.sh keeps the deployment's generated credentials (secrets.yml): the student's
        self.secrets = student.home / ".local/share/gourmetgram" / Path(INVENTORY).stem
        # What only the twin passes (module docstring), set once the host's network exists.
        self.twin_args: tuple[str, ...] = ()
        self.mirror: Mirror | None = None
        self.fip = self.private = ""
        self.state: dict[str, Any] = {}

    def command(self, *args: str, label: str) -> str:
        verb, *rest = args
        extra = self.twin_args if verb == "up" else ()
        line = " ".join([f"provision/platform.sh {verb} --inventory {INVENTORY}", *extra, *map(_q, rest)])
        t0 = time.monotonic()
        proc = self.student.run(line)
        self.timings[label] = TIMINGS[f"platform.sh {label} (student)"] = round(time.monotonic() - t0, 1)
        (self.work / f"{label.replace(' ', '-')}.log").write_text(proc.stdout + proc.stderr)
        log(f"{label}: {self.timings[label]} s (exit {proc.returncode})")
        assert proc.returncode == 0, f"{line} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout


def _q(s: str) -> str:
    return s if re.fullmatch(r"[\w=./:,@+-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def lease(cloud: TwinKvmTacc, student: Student, command: str) -> tuple[int, dict[str, Any]]:
    """``python provision/lease.py COMMAND --json``: its real code, against the twin, with the
    student's openrc and GG_* variables as the README has them."""
    from fake_openstack import openrc

    from provision import lease as lease_cli

    env = dict(openrc(), GG_KEY_NAME=KEY_NAME, GG_KEY_FILE=str(student.key))
    out = student.home / f"lease-{command}.json"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():  # lease.py's option defaults read $GG_KEY_NAME and $GG_KEY_FILE
            mp.setenv(k, v)
        with out.open("w") as fh, contextlib.redirect_stdout(fh):
            code = lease_cli.main([command, "--json", "--inventory", str(student.repo / INVENTORY)], env=env)
    text = out.read_text()
    return code, json.loads(text) if text.strip() else {}


def deploy() -> Iterator[TwinHost]:
    """Generator behind the session fixture ``chameleon_twin``: lease.py up, then the student's
    platform.sh up; afterwards (unless test_twin_down ran) lease.py down and every host removed."""
    testbed = load_testbed()
    tb = testbed.Testbed()
    student = Student()
    with timed("student checkout"):
        student.checkout()
    cloud = TwinKvmTacc(tb, testbed)
    if cloud.reclaimed:
        log(f"left by an interrupted run, removed first: {', '.join(cloud.reclaimed)}")
    cloud.add_keypair(KEY_NAME, student.key)
    host = TwinHost(student, cloud)
    host.state["tb"] = tb
    try:
        with requests_mock.Mocker(real_http=True) as mocker:
            cloud.install(mocker)
            with timed("lease.py up"):
                code, out = lease(cloud, student, "up")
            assert code == 0, out
            host.state["up"] = out
            [server] = cloud.servers.values()
            [port] = [p for p in cloud.ports.values() if p["device_id"] == server["id"]]
            [fip] = [f for f in cloud.fips.values() if f["port_id"] == port["id"]]
            host.fip, host.private = fip["floating_ip_address"], port["fixed_ips"][0]["ip_address"]
            host.lab = cloud.labs[server["id"]]
            host.host = f"{host.lab}-1"
            TIMINGS["host boot"] = cloud.timings.get("boot", 0.0)
            # this machine reaches no download site: the airgap mirror on the lab's bridge, and the
            # generated sample images instead of Food-11
            art = artifacts()
            host.mirror = Mirror(tb.load(host.lab).gateway, Path(art["GG_KAFKA_TARBALL"]), Path(art["GG_MINIO_BINARY"]))
            host.twin_args = (*host.mirror.ansible_args(), "-e gourmetgram_dataset=sample")
            out = host.up(label="deploy")
            host.deploy_output = out
            m = re.search(r"GourmetGram is up on (\S+) \(([\d.]+)\)", out)
            assert m, out[-3000:]
            assert recap_changed(out), "no PLAY RECAP"
            host.address = m.group(2)
            log(f"deployed on {host.host}: floating {host.fip}, private {host.private}")
            yield host
            if KEEP:
                log(f"GG_TWIN_KEEP: kept {host.lab} ({host.fip}); remove it with testbed.py destroy --lab {host.lab}")
                return
            if "down" not in host.state:  # test_twin_down did not run: still leave nothing
                lease(cloud, student, "down")
    finally:
        log(f"timings (s): {json.dumps(TIMINGS)}")
        if not KEEP:
            cloud.close()
        if host.mirror is not None:
            host.mirror.close()

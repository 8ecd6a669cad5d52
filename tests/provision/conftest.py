"""Fixtures: the fake KVM@TACC on requests-mock, an OS_* environment, and a runner for lease.py."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests_mock

# Works with both pytest import modes (prepend and importlib): the repo root for `provision`, this
# directory for the fake.
REPO_ROOT = Path(__file__).resolve().parents[2]
for _path in (REPO_ROOT, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fake_openstack import FakeKvmTacc, openrc  # noqa: E402

from provision import lease as lease_cli  # noqa: E402
from provision.chameleon import inventory as ch_inventory  # noqa: E402


@pytest.fixture
def fake(loopback_only: None) -> Iterator[FakeKvmTacc]:
    cloud = FakeKvmTacc()
    with requests_mock.Mocker() as mocker:
        cloud.install(mocker)
        cloud.mocker = mocker  # type: ignore[attr-defined]
        yield cloud
    assert not cloud.unhandled, f"requests the fake does not know: {cloud.unhandled}"


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake's floating IPs are fictional, not ours to reach: with the requests-mock fake, any socket to
    a non-loopback address fails the test (a served twin with real test hosts does not use this)."""
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if not ipaddress.ip_address(socket.gethostbyname(address[0])).is_loopback:
            raise AssertionError(f"test tried to connect to {address}: only loopback is allowed")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


class FakeSshd:
    """A loopback TCP server that answers like sshd (banner first) or, when ``answering`` is False,
    accepts and closes without a banner (a VM whose sshd is not up yet)."""

    BANNER = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"

    def __init__(self) -> None:
        self.answering = True
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.probed: list[tuple[str, int]] = []  # (address the tool asked for, its port)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.answering:
                    conn.sendall(self.BANNER)

    def probe(self, host: str, port: int, timeout: float) -> bool:
        """The tool's SSH probe aimed at the floating IP, delivered to this loopback port instead."""
        self.probed.append((host, port))
        return ch_inventory.ssh_answers("127.0.0.1", self.port, timeout)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def sshd() -> Iterator[FakeSshd]:
    server = FakeSshd()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_ambient_openstack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OS_") or name.startswith("GG_"):
            monkeypatch.delenv(name)


@dataclass
class FakeClock:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@dataclass
class Result:
    code: int
    out: dict[str, Any]
    err: str


@pytest.fixture
def env() -> dict[str, str]:
    return openrc()


@pytest.fixture
def run(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str], sshd: FakeSshd
) -> Callable[..., Result]:
    inventory = tmp_path / "inventory" / "chameleon.yml"
    key = tmp_path / "id_rsa_chameleon"
    key.write_text("not a real key\n")

    def _run(*argv: str, environ: dict[str, str] | None = None, as_json: bool = True, **hooks: Any) -> Result:
        command, rest = argv[0], list(argv[1:])
        args = [
            command,
            *(["--json"] if as_json else []),
            "--inventory",
            str(inventory),
            "--key-file",
            str(key),
            "--poll-interval",
            "5",
            *rest,
        ]
        if command == "up" and not any(a.startswith("--key-name") for a in rest):
            args += ["--key-name", "mykey"]
        clock = hooks.pop("clock", None) or FakeClock()
        hooks.setdefault("sleep", clock.sleep)
        hooks.setdefault("clock", clock)
        if "tcp_probe" not in hooks:  # the hook's former name, still accepted
            hooks.setdefault("ssh_probe", sshd.probe)
        code = lease_cli.main(args, env=environ if environ is not None else env, **hooks)
        captured = capsys.readouterr()
        out = json.loads(captured.out) if as_json and captured.out.strip() else {"text": captured.out}
        return Result(code, out, captured.err)

    _run.inventory = inventory  # type: ignore[attr-defined]
    _run.key = key  # type: ignore[attr-defined]
    _run.sshd = sshd  # type: ignore[attr-defined]
    return _run

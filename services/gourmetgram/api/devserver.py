"""Run the real API (``gourmetgram-api``) as a subprocess on a free loopback port.

Used by the integration tests and the benchmarks; not part of a deployment.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiProcess:
    def __init__(self, env: dict[str, str], workers: int = 2, log_path: Path | None = None, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **env,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "API_WORKERS": str(workers),
            **{k.upper(): v for k, v in settings.items()},
        }
        self.log_path = log_path or Path(f"/tmp/gg-api-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ApiProcess:
        exe = shutil.which("gourmetgram-api", path=str(Path(sys.executable).parent)) or "gourmetgram-api"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([exe], env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"API not healthy within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

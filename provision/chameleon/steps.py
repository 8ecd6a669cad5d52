"""What a run found or made, and the helpers every step uses: progress, changes, notes, waits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import Any

from .config import Options
from .errors import (
    WaitTimeout,
)
from .output import log
from .session import Cloud


@dataclasses.dataclass
class State:
    """What was found or made; also the --json payload."""

    lease: dict[str, Any] | None = None
    reservation_id: str | None = None
    server: dict[str, Any] | None = None
    floating_ip: str | None = None
    private_address: str | None = None
    security_groups: dict[str, str] = dataclasses.field(default_factory=dict)
    inventory: str | None = None
    changes: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


class Steps:
    """Shared state and helpers of the step mixins (leases, compute, network, inventory)."""

    def __init__(
        self,
        cloud: Cloud,
        opts: Options,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        stage_hook: Callable[[str], None] | None = None,
        ssh_probe: Callable[[str, int, float], bool] | None = None,
        tcp_probe: Callable[[str, int, float], bool] | None = None,
    ) -> None:
        """``ssh_probe(host, port, timeout)`` is True once SSH answers (default: read sshd's banner);
        ``tcp_probe`` is its former name, still accepted."""
        self.cloud = cloud
        self.opts = opts
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.stage_hook = stage_hook
        self.ssh_probe = ssh_probe or tcp_probe
        self.state = State()
        self.stage = "start"

    # -- helpers
    def _done(self, stage: str) -> None:
        self.stage = stage
        if self.stage_hook is not None:
            self.stage_hook(stage)

    def _change(self, what: str) -> None:
        self.state.changes.append(what)
        log(f"+ {what}")

    def _note(self, what: str) -> None:
        self.state.notes.append(what)
        log(f"! {what}")

    def _wait(
        self,
        what: str,
        poll: Callable[[], tuple[Any, str]],
        ok: Iterable[str],
        failed: Iterable[str],
        timeout: float,
        on_timeout: str,
    ) -> Any:
        ok, failed = set(ok), set(failed)
        start = self.clock()
        while True:
            obj, status = poll()
            elapsed = self.clock() - start
            if status in ok or status in failed:
                log(f"  {what}: {status} after {elapsed:.0f}s")
                return obj, status
            log(f"  waiting for {what}: {status} ({elapsed:.0f}s elapsed, timeout {timeout:.0f}s)")
            if elapsed >= timeout:
                raise WaitTimeout(f"{what} still {status} after {elapsed:.0f}s (timeout {timeout:.0f}s). {on_timeout}")
            self.sleep(min(self.opts.poll_interval, max(timeout - elapsed, 0.0)))

    def find_servers(self) -> list[Any]:  # ComputeSteps
        raise NotImplementedError

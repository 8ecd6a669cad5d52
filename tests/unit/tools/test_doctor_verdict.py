"""The doctor's verdict line: a student reads the first line only, so it names what failed."""

from __future__ import annotations

import subprocess

from gourmetgram.tools import doctor


def _systemctl(states: dict[str, str]):
    def run(argv: list[str], **_kw: object) -> subprocess.CompletedProcess[str]:
        out = (
            "\n".join(f"{u} enabled enabled" for u in states)
            if "list-unit-files" in argv
            else "\n".join(states.values())
        )
        return subprocess.CompletedProcess(argv, 0, stdout=out, stderr="")

    return run


def test_verdict_line_names_the_units_that_are_down(monkeypatch) -> None:
    monkeypatch.setattr(doctor.Path, "is_dir", lambda _self: True)
    monkeypatch.setattr(doctor.shutil, "which", lambda _name: "/usr/bin/systemctl")
    states = {
        "gourmetgram-api.service": "active",
        "gourmetgram-stream-consumer.service": "inactive",
        "redis-server.service": "failed",
    }
    units = doctor.check_units(_systemctl(states))
    checks = [units, doctor.Check("disk", "ok", "/ 9 %"), doctor.Check("outbox", "fail", "relay behind")]
    first = doctor.render(checks).splitlines()[0]
    assert first == "VERDICT: FAIL (2 of 3 checks: units (gourmetgram-stream-consumer, redis-server), outbox)"


def test_all_active_is_ok_and_warnings_do_not_fail() -> None:
    ok = doctor.Check("units", "ok", "3 units active")
    assert doctor.render([ok]).splitlines()[0] == "VERDICT: OK"
    warn = doctor.Check("model", "warn", "no model published")
    assert doctor.render([ok, warn]).splitlines()[0] == "VERDICT: OK with warnings"

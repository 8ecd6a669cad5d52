"""Contract test: schemathesis (its CLI, as a user would run it) against the real API on the
loopback servers, with a bounded budget. Fails on any 5xx and on any response whose status,
content type, headers or body the OpenAPI document does not state. Prints the case count."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# Per operation and phase: with 6 operations this is ~700 cases, about 40 s on 2 cores.
MAX_EXAMPLES = 50
SEED = 20261201  # reproducible in CI; change it (or run the CLI by hand) to explore further


def schemathesis_cmd(
    base_url: str, report: Path, max_examples: int = MAX_EXAMPLES, seed: int | None = SEED
) -> list[str]:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    cmd = [exe, "run", f"{base_url}/openapi.json", "--checks", ",".join(CHECKS), "--max-examples", str(max_examples)]
    cmd += ["--no-color", "--wait-for-schema", "30", "--request-timeout", "30"]
    cmd += ["--report", "json", "--report-json-path", str(report), "--generation-database", "none"]
    return [*cmd, "--seed", str(seed)] if seed is not None else cmd


def test_openapi_states_every_response(api: str, client: httpx.Client, tmp_path: Path) -> None:
    doc = client.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method != "post":
                continue
            assert {"413", "422", "503"} <= set(op["responses"]), (path, op["responses"].keys())
            ref = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ValidationErrorBody"), (path, ref)

    report = tmp_path / "schemathesis.json"
    t0 = time.perf_counter()
    run = subprocess.run(schemathesis_cmd(api, report), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    seconds = time.perf_counter() - t0
    out = run.stdout + run.stderr
    summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-3000:]
    cases = _cases(report, out)
    print(f"schemathesis: {cases} cases in {seconds:.0f} s, checks {','.join(CHECKS)}; exit {run.returncode}")
    print(summary)
    assert run.returncode == 0, out[-15000:]
    assert cases >= 300, f"only {cases} cases ran"


def _cases(report: Path, out: str) -> int:
    """Number of generated cases, from the JSON report (or the text summary)."""
    if report.exists():
        return int(json.loads(report.read_text())["test_cases"]["generated"])
    for line in out.splitlines():
        if " generated" in line and line.strip()[:1].isdigit():
            return int(line.split()[0])
    return 0

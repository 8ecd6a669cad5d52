"""The roles' download locations (issue 11), as Ansible renders them: Kafka from Apache's CDN and
then its permanent archive, MinIO from its GitHub release; an airgap mirror (kafka_mirror,
minio_mirror) replaces only the origin, so it serves the official paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: localhost
  gather_facts: false
  vars_files:
    - {root}/roles/kafka/defaults/main.yml
    - {root}/roles/kafka/vars/main.yml
    - {root}/roles/minio/defaults/main.yml
    - {root}/roles/minio/vars/main.yml
  tasks:
    - ansible.builtin.copy:
        content: "{{{{ {{'kafka': __kafka_download_urls, 'minio': __minio_download_url}} | to_json }}}}"
        dest: "{out}"
"""


def _render(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "urls.json"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(root=ROOT, out=out))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    python = f"ansible_python_interpreter={sys.executable}"
    proc = subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", str(play), "-e", python, *extra],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mirrors")


def test_official_locations_cdn_then_permanent_archive(tmp: Path) -> None:
    urls = _render(tmp)
    assert urls["kafka"] == [
        "https://dlcdn.apache.org/kafka/4.1.2/kafka_2.13-4.1.2.tgz",
        "https://archive.apache.org/dist/kafka/4.1.2/kafka_2.13-4.1.2.tgz",
    ]
    release = "RELEASE.2025-09-07T16-13-09Z"
    assert urls["minio"] == f"https://github.com/minio/minio/releases/download/{release}/minio.linux-amd64.{release}"


def test_a_mirror_serves_the_official_paths(tmp: Path) -> None:
    m = "http://10.0.0.1:8765"
    urls = _render(tmp, "-e", f"kafka_mirror={m}", "-e", f"minio_mirror={m}")
    assert urls["kafka"] == [f"{m}/dist/kafka/4.1.2/kafka_2.13-4.1.2.tgz"]
    assert urls["minio"].startswith(f"{m}/minio/minio/releases/download/RELEASE.")

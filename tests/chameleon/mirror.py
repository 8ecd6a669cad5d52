"""The twin's airgap mirror (issue 11): the download paths a real host uses, exercised on the twin.

A real Chameleon host downloads Kafka from Apache (roles/kafka: the CDN, then the permanent
archive) and MinIO's last community binary from its GitHub release, each verified by a pinned
checksum. This machine reaches neither, so the twin's host gets them from a mirror on the lab's
own bridge address, serving files under the same paths as the role's upstream URLs (the URL paths
are rendered from the role defaults, so they cannot drift), through the roles' ``kafka_mirror`` and
``minio_mirror`` switches. The download, the checksum verification and the unpack are the tasks a
real host runs. What differs: the bytes are the local builds (Kafka assembled from Maven Central
jars, MinIO built from source; ansible/artifacts/build.sh), so their checksums are passed with them.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]


def role_defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())


def _render(template: str, values: dict[str, Any]) -> str:
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(values)


def upstream_urls() -> dict[str, str]:
    """The official URLs the roles download by default: Kafka's permanent archive, MinIO's release asset."""
    kafka, minio = role_defaults("kafka"), role_defaults("minio")
    return {
        "kafka": _render(kafka["kafka_download_urls"][-1], kafka),
        "minio": _render(minio["minio_download_url"], minio),
    }


def digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]


class Mirror:
    """An HTTP server on ``address`` serving ``kafka_tarball`` and ``minio_binary`` at the upstream paths."""

    def __init__(self, address: str, kafka_tarball: Path, minio_binary: Path) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="gg-mirror-")
        root = Path(self._dir.name)
        self.paths: dict[str, str] = {}
        for name, src in (("kafka", kafka_tarball), ("minio", minio_binary)):
            path = urllib.parse.urlsplit(upstream_urls()[name]).path
            dst = root / path.lstrip("/")
            dst.parent.mkdir(parents=True)
            dst.symlink_to(src)
            self.paths[name] = path
        self.checksums = {"kafka": digest(kafka_tarball, "sha512"), "minio": digest(minio_binary, "sha256")}
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = http.server.ThreadingHTTPServer((address, 0), handler)
        self.server.requests = []  # type: ignore[attr-defined]
        self.url = f"http://{address}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="mirror", daemon=True).start()

    @property
    def requests(self) -> list[str]:
        """The paths requested so far (the deploy's downloads)."""
        return list(self.server.requests)  # type: ignore[attr-defined]

    def ansible_args(self) -> tuple[str, ...]:
        """The -e arguments that point the roles at this mirror, with the served bytes' checksums."""
        return (
            f"-e kafka_mirror={self.url}",
            f"-e kafka_checksum={self.checksums['kafka']}",
            f"-e minio_mirror={self.url}",
            f"-e minio_checksum={self.checksums['minio']}",
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()

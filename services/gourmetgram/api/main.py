"""``gourmetgram-api``: uvicorn with API_HOST / API_PORT / API_WORKERS from the settings,
on uvloop and httptools (see the worker-model notes in ``gourmetgram.api.app``)."""

from __future__ import annotations

import uvicorn

from gourmetgram.common.settings import ApiSettings


def run() -> None:
    settings = ApiSettings()
    uvicorn.run(
        "gourmetgram.api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    run()

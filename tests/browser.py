"""Headless Chromium (Debian's package) driven by Playwright, for the tests that click in the UIs as
the lab guide's reader does: tests/testbed/test_ui_browser.py and the Airflow toggles of
tests/e2e/test_lab.py (step 6)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PageFactory = Callable[..., Any]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser (installs Debian's chromium first if it is missing)."""
    if not Path(CHROMIUM).exists():
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            check=True,
            capture_output=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def pages(browser: Any) -> Iterator[PageFactory]:
    """make(http_user=None, http_password=None) -> a page in a fresh context; all closed at the end."""
    contexts: list[Any] = []

    def make(http_user: str | None = None, http_password: str | None = None) -> Any:
        kw: dict[str, Any] = {"viewport": {"width": 1400, "height": 900}}
        if http_user:
            kw["http_credentials"] = {"username": http_user, "password": http_password}
        ctx = browser.new_context(**kw)
        ctx.set_default_timeout(30_000)
        contexts.append(ctx)
        return ctx.new_page()

    try:
        yield make
    finally:
        for c in contexts:
            c.close()


def airflow_sign_in(page: Any, base: str, password: str) -> None:
    """The guide's 6b: open Airflow, sign in as admin."""
    page.goto(f"{base}/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name='username']", "admin")
    page.fill("input[name='password']", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/auth/login" not in u, timeout=60_000)


def airflow_dag_toggle(page: Any, base: str, dag_id: str) -> Any:
    """The toggle of one DAG on Airflow's **Dags** page (its card, or its row in the table view)."""
    page.goto(f"{base}/dags")
    entry = page.locator("[data-testid='dag-card'], tr").filter(
        has=page.get_by_role("link", name=re.compile(rf"^{re.escape(dag_id)}$"))
    )
    toggle = entry.get_by_test_id("toggle-pause")
    toggle.wait_for(timeout=60_000)
    return toggle

"""The lab's web UIs on a deployed test host, seen in a real browser.

A headless Debian chromium driven by Playwright logs into each UI, opens the page the lab step
uses (Adminer's moderation_decisions, Kafka view events, a Redis window key, the Iceberg table
training_data, MinIO's models/ prefix, a DAG graph in Airflow, a training notebook in Jupyter),
saves a PNG screenshot and asserts on what the page shows. Anonymous requests to every UI are
refused or sent to a login page.

Deployment (module fixture):
  - GG_DEPLOY_SHARED=1 (tests/run.sh deploy): the session's deployed host after the lab steps
    (the Chameleon twin's in CI, tests/conftest.py `sandbox`), so every page shows the lab's real data;
  - GG_UI_TEST_INVENTORY=<inventory with a `ui` group> and GG_SECRETS_DIR=<its secrets dir>: use
    an already deployed host (e.g. after the full site.yml);
  - otherwise: create the test host lab `u-uibrowser` (ansible/testbed/testbed.py), run
    GG_UI_TEST_PLAYBOOK (default tests/testbed/ui_site.yml) on it, destroy it afterwards
    (GG_UI_TEST_KEEP=1 keeps it).
Screenshots go to GG_UI_TEST_OUTPUT (default /tmp/gourmetgram-test-output/ui).
Airflow (8080) and the MinIO console (9001) are checked when they answer.

  pytest -m testbed tests/testbed/test_ui_browser.py
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests import deployed as shared_deployment
from tests.browser import airflow_sign_in, chromium, pages

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(3600)]  # may deploy its own host

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "ansible" / "testbed" / "testbed.py"
LAB = "u-uibrowser"
IMAGE_ID = "3f1d2c4b-5a6e-4f70-8a9b-0c1d2e3f4a5b"  # seeded by tests/testbed/ui_site.yml
PORTS = {
    "adminer": 5050,
    "kafka": 8090,
    "redis": 8081,
    "minio": 9001,
    "iceberg": 3000,
    "jupyter": 8888,
    "airflow": 8080,
}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


class Deployment:
    def __init__(
        self,
        inventory: Path,
        secrets: Path,
        host: str,
        image_id: str = IMAGE_ID,
        view_member: str = "view-1",
        lab: shared_deployment.Sandbox | None = None,
    ):
        self.inventory, self.secrets, self.host = inventory, secrets, host
        self.lab = lab  # the lab's host, after its steps 4-8 (shared mode only)
        # The Redis window key the browser opens: the seeded one, or a real one on a lab host.
        self.image_id, self.view_member = image_id, view_member

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    def url(self, ui: str, path: str = "/") -> str:
        return f"http://{self.host}:{PORTS[ui]}{path}"

    @property
    def user(self) -> str:
        return "gourmetgram"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, request) -> Deployment:
    if shared_deployment.shared():
        # The session's sandbox host after the lab steps (tests/deployed.py): real data on every page.
        s = request.getfixturevalue("sandbox")
        key = s.redis("--scan --pattern 'image:*:views' | head -1").strip()
        image_id = key.split(":")[1]
        # redis-commander lists a sorted set by descending score, 20 a page: the newest view is first.
        member = s.redis(f"ZREVRANGE {key} 0 0").strip()
        yield Deployment(s.inventory, s.secrets, s.address, image_id=image_id, view_member=member, lab=s)
        return
    inv = os.environ.get("GG_UI_TEST_INVENTORY")
    if inv:
        secrets = Path(os.environ["GG_SECRETS_DIR"])
        yield Deployment(Path(inv), secrets, _ui_host_via_cli(Path(inv)))
        return
    if os.geteuid() != 0 or not shutil.which("systemd-nspawn"):
        pytest.skip("test hosts need root and systemd-nspawn")
    work = tmp_path_factory.mktemp("ui-lab")
    invdir = work / "inventory"
    invdir.mkdir()
    (invdir / "group_vars").symlink_to(ROOT / "inventory" / "group_vars")
    secrets = work / "secrets"
    _run([sys.executable, str(TESTBED), "destroy", "--lab", LAB])
    created = json.loads(_run([sys.executable, str(TESTBED), "create", "--lab", LAB, "--hosts", "1"]).stdout)
    _run([sys.executable, str(TESTBED), "inventory", "--lab", LAB, "--output", str(invdir / "hosts.yml")])
    env = dict(os.environ, GG_SECRETS_DIR=str(secrets), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cache = os.environ.get("GG_CACHE", "/var/cache/gourmetgram")
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", cache + "/ansible-collections")
    playbook = os.environ.get("GG_UI_TEST_PLAYBOOK", "tests/testbed/ui_site.yml")
    bindir = Path(sys.executable).parent
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [str(bindir / "ansible-playbook"), "-i", str(invdir / "hosts.yml"), playbook],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=3600,
        )
        (work / "playbook.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, f"playbook failed, log: {work / 'playbook.log'}\n{proc.stdout[-3000:]}"
        print(f"deployed {playbook} in {time.monotonic() - t0:.0f} s")
        yield Deployment(invdir / "hosts.yml", secrets, created["hosts"][0]["address"])
    finally:
        if not os.environ.get("GG_UI_TEST_KEEP"):
            subprocess.run([sys.executable, str(TESTBED), "destroy", "--lab", LAB], capture_output=True)


def _ui_host_via_cli(inventory: Path) -> str:
    exe = Path(sys.executable).parent / "ansible-inventory"
    out = _run([str(exe), "-i", str(inventory), "--list"], cwd=ROOT)
    data = json.loads(out.stdout)
    name = data["ui"]["hosts"][0] if "ui" in data else data["all"]["hosts"][0]
    hv = data["_meta"]["hostvars"][name]
    return hv.get("gourmetgram_public_address") or hv.get("ansible_host") or name


@pytest.fixture(scope="module")
def shots() -> Path:
    out = Path(os.environ.get("GG_UI_TEST_OUTPUT", "/tmp/gourmetgram-test-output/ui"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("playwright.sync_api")
    with chromium() as b:
        yield b


@pytest.fixture
def page_for(browser):
    with pages(browser) as make:
        yield make


# --- anonymous access ------------------------------------------------------------------------


@pytest.mark.parametrize("ui", ["adminer", "kafka", "iceberg"])
def test_anonymous_gets_401(deployed, ui):
    r = requests.get(deployed.url(ui), timeout=10, allow_redirects=False)
    assert r.status_code == 401, (ui, r.status_code)
    assert "basic" in r.headers.get("WWW-Authenticate", "").lower()


@pytest.mark.parametrize("ui", ["adminer", "kafka", "iceberg"])
def test_wrong_password_gets_401(deployed, ui):
    r = requests.get(deployed.url(ui), auth=(deployed.user, "not-the-password"), timeout=10)
    assert r.status_code == 401


def test_anonymous_redis_browser_gets_sign_in(deployed):
    # redis-commander: the page is its sign-in dialog; every API call needs the signed-in token.
    page = requests.get(deployed.url("redis"), timeout=10)
    assert "signinModal" in page.text
    assert requests.get(deployed.url("redis", "/connections"), timeout=10).status_code == 401
    bad = requests.post(
        deployed.url("redis", "/signin"), data={"username": deployed.user, "password": "nope"}, timeout=10
    )
    assert bad.json()["ok"] is False


def test_anonymous_jupyter_goes_to_login(deployed):
    r = requests.get(deployed.url("jupyter"), timeout=10, allow_redirects=True)
    assert r.url.split("?")[0].endswith("/login"), r.url
    assert "token" in r.text.lower() or "password" in r.text.lower()
    api = requests.get(deployed.url("jupyter", "/api/contents"), timeout=10)
    assert api.status_code == 403


def test_anonymous_minio_console_needs_login(deployed):
    if not _answers(deployed.host, PORTS["minio"]):
        pytest.skip("no MinIO console on 9001")
    r = requests.get(deployed.url("minio", "/api/v1/buckets"), timeout=10)
    assert r.status_code in (401, 403), r.status_code


def test_anonymous_airflow_refused(deployed):
    if not _answers(deployed.host, PORTS["airflow"]):
        pytest.skip("no Airflow on 8080")
    r = requests.get(deployed.url("airflow", "/api/v2/dags"), timeout=10)
    assert r.status_code in (401, 403), r.status_code


# --- the lab's pages in a browser --------------------------------------------------------------


def test_adminer_moderation_decisions(deployed, page_for, shots):
    page = page_for(deployed.user, deployed.secret("ui_adminer_password"))
    page.goto(deployed.url("adminer"))
    # The login form is preset: PostgreSQL, our server (read-only), database and user.
    assert page.locator("input[name='auth[server]']").get_attribute("readonly") is not None
    assert page.locator("input[name='auth[db]']").input_value() == "gourmetgram"
    page.fill("input[name='auth[password]']", deployed.secret("postgres_app_password"))
    page.click("input[type=submit]")
    page.wait_for_selector("#tables", timeout=30_000)
    page.get_by_role("link", name="moderation_decisions", exact=True).first.click()
    page.get_by_role("link", name="Select data").click()
    page.wait_for_selector("table.checkable")
    page.screenshot(path=str(shots / "adminer-moderation_decisions.png"), full_page=True)
    body = page.inner_text("body")
    assert "moderation_decisions" in body
    assert "recommendation" in body and any(r in body for r in ("REVIEW", "FLAG", "SAFE"))


def _adminer_login(deployed, page_for):
    page = page_for(deployed.user, deployed.secret("ui_adminer_password"))
    page.goto(deployed.url("adminer"))
    page.fill("input[name='auth[password]']", deployed.secret("postgres_app_password"))
    page.click("input[type=submit]")
    page.wait_for_selector("#tables", timeout=30_000)
    return page


def _adminer_sql_command(page, sql: str) -> tuple[list[str], list[list[str]]]:
    """The guide's **SQL command**, paste, **Execute**: the result table's header and rows."""
    page.get_by_role("link", name="SQL command").click()
    # Adminer's highlighter (jush) replaces the textarea by an editable <pre> and copies it back on
    # Execute from its key events: typed, as a reader's paste, not set.
    page.locator("pre.sqlarea").click()
    page.keyboard.press("Control+A")
    page.keyboard.type(sql)
    page.get_by_role("button", name="Execute").click()
    result = page.locator("#content table.nowrap, #content .error").first
    result.wait_for(timeout=30_000)
    assert result.evaluate("e => e.tagName") == "TABLE", result.inner_text()
    head = [h.strip() for h in result.locator("thead th").all_inner_texts()]
    rows = [[c.strip() for c in r.locator("td").all_inner_texts()] for r in result.locator("tbody tr").all()]
    return head, rows


def test_adminer_sql_command_runs_the_guides_queries(deployed, page_for, shots):
    """Lab 5e and 8e as the guide has them: SQL command, paste the guide's query, Execute."""
    if deployed.lab is None:
        pytest.skip("needs the lab's decisions: the shared deployment (GG_DEPLOY_SHARED=1)")
    from tests.guide import section

    page = _adminer_login(deployed, page_for)
    (latest,) = section("5e").sql()
    head, rows = _adminer_sql_command(page, latest)
    page.screenshot(path=str(shots / "adminer-5e-latest-decisions.png"), full_page=True)
    assert head[:6] == [
        "image_id",
        "inference_mode",
        "moderation_probability",
        "recommendation",
        "trigger_type",
        "created_at",
    ], head
    ids = {r[0] for r in deployed.lab.psql(latest)}
    assert rows and all(len(r) == 6 for r in rows) and rows[0][0] in ids, (rows, ids)
    (compare,) = section("8e").sql()
    head, rows = _adminer_sql_command(page, compare)
    page.screenshot(path=str(shots / "adminer-8e-heuristic-vs-model.png"), full_page=True)
    assert head[0] == "inference_mode" and head[-3:] == ["flagged", "review", "safe"], head
    # "Expect two rows, heuristic and model, with different distributions"
    assert sorted(r[0] for r in rows) == ["heuristic", "model"], rows
    assert rows[0][2:] != rows[1][2:], rows


def test_kafka_views_topic_messages(deployed, page_for, shots):
    page = page_for(deployed.user, deployed.secret("ui_kafka_password"))
    page.goto(deployed.url("kafka"))
    page.get_by_text("Status: Connected").wait_for(timeout=60_000)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="gourmetgram.views", exact=True).click()
    page.get_by_role("button", name="Load Messages").click()  # the latest messages (lab step 4a)
    page.get_by_text("Message Details").wait_for(timeout=60_000)
    page.locator("[data-testid='stExpander'] summary").first.click()
    page.get_by_text("image_id").first.wait_for()
    # Streamlit scrolls inside its own container: bring the opened message into the picture.
    page.get_by_text("image_id").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "kafka-gourmetgram.views-messages.png"))
    assert page.get_by_role("combobox", name="Topic").input_value() == "gourmetgram.views"
    body = page.inner_text("body")
    assert "Total Records" in body
    assert '"image_id"' in body and '"event_type": "view"' in body.replace('":"', '": "')


def test_redis_window_key(deployed, page_for, shots):
    page = page_for()
    dialogs: list[str] = []  # the sign-in form reports a refused sign-in with alert()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(deployed.url("redis"))
    # The sign-in modal fades in; when the fade ends Bootstrap focuses the modal and then the page's
    # 'shown' handler focuses the username field. Filling before that loses keystrokes to the focus
    # change (seen as "Login failed" in the unit's journal), so wait for the field to hold focus.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'signinUsername'")
    password = deployed.secret("ui_redis_password")
    page.fill("#signinUsername", deployed.user)
    page.fill("#signinPassword", password)
    assert page.input_value("#signinUsername") == deployed.user
    assert page.input_value("#signinPassword") == password
    page.click("#signinButton")
    tree = page.locator("#keyTree")
    image_root = tree.locator("a.jstree-anchor", has_text="image:*")
    try:
        image_root.wait_for()
    except Exception:
        page.screenshot(path=str(shots / "redis-signin-failed.png"), full_page=True)
        raise AssertionError(f"no key tree after sign-in; dialogs: {dialogs}") from None
    # Walk the key tree as a user does: image:* -> <uuid>:* -> views.
    toggle = "xpath=preceding-sibling::i[contains(@class,'jstree-ocl')]"
    image_root.locator(toggle).click()
    image_node = tree.locator("a.jstree-anchor", has_text=deployed.image_id)
    image_node.locator(toggle).click()
    # Under the image's own node, the sorted set "views (N)" (not total_views).
    image_node.locator("xpath=..").locator("a.jstree-anchor", has_text=re.compile(r"^views( \(\d+\))?$")).click()
    page.locator("#itemData").get_by_text(f"image:{deployed.image_id}:views").wait_for()
    page.get_by_text(deployed.view_member).first.wait_for()
    page.screenshot(path=str(shots / "redis-image-views.png"), full_page=True)
    body = page.inner_text("body")
    assert f"image:{deployed.image_id}:views" in body
    assert "Sorted Set" in body and deployed.view_member in body
    # The JSON value viewer loaded too (its files sit outside redis-commander's own tree).
    assert page.evaluate("typeof $.fn.jsonViewer") == "function"


def test_iceberg_training_data(deployed, page_for, shots):
    page = page_for(deployed.user, deployed.secret("ui_iceberg_password"))
    page.goto(deployed.url("iceberg", "/ui/"))
    page.get_by_text("gourmetgram").first.click(timeout=60_000)  # the preconfigured catalog
    page.get_by_text("training_data").first.click(timeout=60_000)
    page.get_by_text("views_5min").first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "iceberg-moderation.training_data.png"), full_page=True)
    body = page.inner_text("body")
    assert "training_data" in body and "views_5min" in body and "image_id" in body


def test_minio_models_prefix(deployed, page_for, shots):
    if not _answers(deployed.host, PORTS["minio"]):
        pytest.skip("no MinIO console on 9001")
    page = page_for()
    page.goto(deployed.url("minio", "/login"))
    page.fill("#accessKey", "gourmetgram-admin")
    page.fill("#secretKey", deployed.secret("minio_root_password"))
    page.get_by_role("button", name="Login").click()
    page.wait_for_url("**/browser**", timeout=30_000)
    page.goto(deployed.url("minio", "/browser/gourmetgram-datalake"))
    ack = page.get_by_role("button", name="Acknowledge")  # AGPL notice on a first login
    with contextlib.suppress(Exception):  # shown once per browser profile only
        ack.click(timeout=5_000)
    page.get_by_text("models", exact=True).first.click()
    page.wait_for_url("**/models%2F**")
    page.get_by_text("moderation", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "minio-models-prefix.png"), full_page=True)
    assert "moderation" in page.inner_text("body")


def test_airflow_dag_graph(deployed, page_for, shots):
    if not _answers(deployed.host, PORTS["airflow"]):
        pytest.skip("no Airflow on 8080")
    page = page_for()
    airflow_sign_in(page, deployed.url("airflow", ""), deployed.secret("airflow_admin_password"))
    page.goto(deployed.url("airflow", "/dags/etl_moderation"))
    page.get_by_role("button", name=re.compile("Show Graph")).first.click()
    for task in ("extract_data", "transform_features", "load_iceberg"):
        page.locator(".react-flow__node", has_text=task).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1_000)  # let the layout settle for the picture
    page.screenshot(path=str(shots / "airflow-etl_moderation-graph.png"))
    assert "etl_moderation" in page.inner_text("body")


def _jupyter(deployed, page_for):
    page = page_for()
    page.goto(deployed.url("jupyter"))
    page.fill("input[type='password']", deployed.secret("ui_jupyter_token"))
    page.keyboard.press("Enter")
    page.wait_for_url("**/lab**", timeout=60_000)
    return page


def test_jupyter_training_notebook(deployed, page_for, shots):
    page = _jupyter(deployed, page_for)
    notebooks = [n for n in ("training_large_data_demo.ipynb", "training.ipynb") if (ROOT / "training" / n).exists()]
    if notebooks:
        # The server opens on the first training notebook (default_url) after the login.
        page.locator(".lm-TabBar-tabLabel", has_text=notebooks[0]).first.wait_for(timeout=60_000)
        page.locator(".jp-Notebook .jp-RenderedMarkdown").first.wait_for(timeout=60_000)
        page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-CodeCell .cm-line').length > 3")
        # The notebook's kernel (our venv, catalog environment, the 512 MB cap of lab 7b) starts and goes idle.
        from gourmetgram.tools.capped_kernel import kernel_spec

        page.get_by_text(f"{kernel_spec()['display_name']} | Idle").wait_for(timeout=120_000)
    else:
        page.get_by_text("training").first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "jupyter-training-notebook.png"), full_page=True)
    body = page.inner_text("body")
    assert "training" in body
    if notebooks:
        assert notebooks[0] in body and "import" in body


def test_jupyter_training_notebook_publishes_a_model(deployed, page_for, shots):
    """Lab 7c, scenario 4 (docs/lab.md): training/training.ipynb, its cells run in JupyterLab on the
    lab's own training data, publishes the four artifacts as the next model version."""
    if deployed.lab is None:
        pytest.skip("needs the lab's training data: the shared deployment (GG_DEPLOY_SHARED=1)")
    from playwright.sync_api import expect

    from gourmetgram.common import names
    from gourmetgram.tools.capped_kernel import kernel_spec

    before = json.loads(deployed.lab.gourmetgram("models"))["metadata"]["version"]
    idle = f"{kernel_spec()['display_name']} | Idle"
    page = _jupyter(deployed, page_for)
    page.goto(deployed.url("jupyter", "/lab/tree/training/training.ipynb"))
    tab = page.locator(".lm-TabBar-tab", has_text="training.ipynb").first
    tab.wait_for(timeout=60_000)
    page.get_by_text(idle).wait_for(timeout=120_000)
    # JupyterLab restores the workspace's tabs (the notebook an earlier visit opened) while it opens
    # this one, and may leave the other current: Run All would run that one. Click, as a user would.
    tab.click()
    expect(tab).to_have_class(re.compile(r"\blm-mod-current\b"), timeout=10_000)
    page.get_by_text(idle).wait_for(timeout=120_000)  # the status bar shows the current tab's kernel
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    published = page.get_by_text(re.compile(r"published version \d+ to s3://"))
    # A cell that raised: its traceback, or the "error: ..." line the notebook prints for a LabError.
    failed = (
        page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output")
        .get_by_text(re.compile(r"Traceback \(most recent call last\)|^error: "))
        .first
    )
    deadline = time.monotonic() + 600  # Run All stops at a cell that raises: fail on it, not at the deadline
    while not published.is_visible() and not failed.is_visible() and time.monotonic() < deadline:
        page.wait_for_timeout(2_000)
    page.screenshot(path=str(shots / "jupyter-training-published.png"), full_page=True)
    assert not failed.is_visible(), failed.inner_text()
    assert published.is_visible(), (
        "no 'published version' line in 600 s: " + page.inner_text(".jp-NotebookPanel:visible")[-2000:]
    )
    models = json.loads(deployed.lab.gourmetgram("models"))
    assert models["metadata"]["version"] == before + 1, (before, models["metadata"])
    assert f"published version {before + 1} " in published.inner_text()
    assert set(models["objects"]) >= {names.MODEL_FILE, names.SCALER_FILE, names.ENCODER_FILE, names.METADATA_FILE}

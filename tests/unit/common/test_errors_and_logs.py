"""Errors a student can act on (lab path) and readable log lines (markers, non-ASCII)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import sqlalchemy.exc
from pyiceberg.exceptions import NoSuchTableError

from gourmetgram import cli
from gourmetgram.common import errors, logs, names


def test_no_training_rows_says_which_dags_and_how_long_to_wait() -> None:
    text = str(errors.NoTrainingRows())
    assert text.startswith(f"no training rows in {names.ICEBERG_TRAINING_DATA}")
    assert names.DAG_AGGREGATION in text and names.DAG_ETL in text and "verify-pipeline" in text
    assert f"{names.LABEL_HORIZON_MINUTES + 1} minutes" in text
    assert isinstance(errors.NoTrainingRows(), ValueError)  # callers catching ValueError keep working


@pytest.mark.parametrize(
    ("identifier", "hint"),
    [
        (names.ICEBERG_TRAINING_DATA, names.DAG_ETL),
        (names.ICEBERG_LARGE_TRAINING_DATA, "generate-large-dataset"),
        (names.ICEBERG_EVENTS, names.DAG_AGGREGATION),
    ],
)
def test_missing_iceberg_tables_get_the_step_that_creates_them(identifier: str, hint: str) -> None:
    known = errors.explain(NoSuchTableError(f"Table does not exist: {identifier}"))
    assert isinstance(known, errors.MissingTable) and identifier in known.message and hint in known.hint


def test_unreachable_postgres_is_explained_and_unknown_errors_are_not() -> None:
    exc = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    known = errors.explain(exc)
    assert known is not None and "cannot reach PostgreSQL" in known.message and "systemctl" in known.hint
    assert errors.explain(KeyError("x")) is None


def test_cli_prints_error_and_hint_instead_of_a_traceback(monkeypatch, capsys) -> None:
    from gourmetgram.training import cli as training_cli

    def no_rows(_argv: list[str]) -> None:
        raise errors.NoTrainingRows()

    monkeypatch.setattr(training_cli, "train_main", no_rows)
    assert cli.main(["train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no training rows") and "what to do:" in err and "Traceback" not in err


def test_cli_lets_programming_errors_surface(monkeypatch) -> None:
    from gourmetgram.training import cli as training_cli

    monkeypatch.setattr(training_cli, "train_main", lambda _argv: {}["missing"])
    with pytest.raises(KeyError):
        cli.main(["train"])


def test_lab_markers_lead_the_consumer_headlines() -> None:
    assert names.LOG_MILESTONE == "🎯 MILESTONE REACHED!"
    assert names.LOG_VIRAL == "🔥 VIRAL CONTENT ALERT!"
    assert names.LOG_POPULAR == "⭐ POPULAR POST!"


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_non_ascii_stays_readable_in_both_log_formats(fmt: str, monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    logs.setup("INFO", fmt)
    try:
        logs.event(logs.get_logger("t"), f"{names.LOG_VIRAL} Image ab → REVIEW", image="ab")
    finally:
        logging.getLogger().handlers[:] = []
    line = out.getvalue().strip()
    assert "🔥 VIRAL CONTENT ALERT! Image ab → REVIEW" in line and "\\u" not in line
    if fmt == "json":
        assert json.loads(line)["msg"].startswith("🔥")

"""``gourmetgram verify-pipeline`` (lab step 6e): schema, row count, labels and sample rows of
moderation.training_data, and what the last ETL run left out (images waiting for their label).
Returns a process exit code: 0 when the table exists, 1 when not."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from gourmetgram.common import names
from gourmetgram.etl import catalog as cat


def verify_pipeline(
    catalog: Any | None = None,
    identifier: str = names.ICEBERG_TRAINING_DATA,
    sample: int = 5,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    catalog = catalog or cat.load_catalog()
    table = cat.load_table(catalog, identifier)
    if table is None:
        print(f"Table: {identifier} does not exist (run the {names.DAG_ETL} DAG first)", file=out)
        return 1
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot and snapshot.summary else None
    rows = int(summary.get("total-records", 0)) if summary else 0
    print(f"Table: {identifier}", file=out)
    print(f"Location: {table.location()}", file=out)
    print(f"Schema:\n{table.schema()}", file=out)
    print(f"Row count: {rows}", file=out)
    _print_run(summary, out)
    if rows:
        frame = table.scan(limit=sample).to_pandas()
        labels = table.scan(selected_fields=(names.LABEL_COLUMN,)).to_arrow().column(0).to_pylist()
        positives = sum(labels)
        print(f"Labels: {positives} positive (flagged), {len(labels) - positives} negative", file=out)
        with _wide():
            print(f"Sample rows (first {len(frame)}):\n{frame.to_string(index=False)}", file=out)
    else:
        print(
            f"No training rows yet: an image gets rows once it is older than the label horizon. Keep the "
            f"generator running (sudo systemctl start gourmetgram-generator), wait a few minutes, then trigger "
            f"{names.DAG_AGGREGATION} and, after it is green, {names.DAG_ETL} again.",
            file=out,
        )
    return 0


def _print_run(summary: Any, out: TextIO) -> None:
    """The last ETL run's cutoff, horizon and waiting images (from the snapshot summary)."""
    if summary is None:
        return
    cutoff, horizon, waiting = (summary.get(f"gourmetgram.{k}") for k in ("cutoff", "label_horizon_minutes", "waiting"))
    if cutoff:
        print(f"As of: {cutoff} (label horizon {float(horizon or 0):g} min)", file=out)
    if waiting and int(waiting):
        print(f"Waiting for their label: {waiting} images younger than the horizon (not in the table yet)", file=out)


class _wide:
    def __enter__(self) -> None:
        import pandas as pd

        self._ctx = pd.option_context("display.width", 250, "display.max_columns", 30)
        self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def main() -> int:
    return verify_pipeline()


if __name__ == "__main__":
    raise SystemExit(main())

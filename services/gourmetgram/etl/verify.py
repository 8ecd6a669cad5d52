"""``gourmetgram verify-pipeline`` (lab step 6e): schema, row count and sample rows of
moderation.training_data. Returns a process exit code: 0 when the table exists, 1 when not."""

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
    rows = int(snapshot.summary.get("total-records", 0)) if snapshot and snapshot.summary else 0
    print(f"Table: {identifier}", file=out)
    print(f"Location: {table.location()}", file=out)
    print(f"Schema:\n{table.schema()}", file=out)
    print(f"Row count: {rows}", file=out)
    if rows:
        frame = table.scan(limit=sample).to_pandas()
        labels = table.scan(selected_fields=(names.LABEL_COLUMN,)).to_arrow().column(0)
        print(f"Positive labels: {sum(labels.to_pylist())} of {len(labels)}", file=out)
        with _wide():
            print(f"Sample rows (first {len(frame)}):\n{frame.to_string(index=False)}", file=out)
    return 0


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

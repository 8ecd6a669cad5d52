"""Errors a student can act on: what went wrong and what to do next, instead of a traceback.

The CLI (``gourmetgram ...``) prints a :class:`LabError` as ``error: …`` plus its hint and exits
with code 2; :func:`explain` turns the usual infrastructure failures (database, object store,
broker unreachable; Iceberg table missing) into the same form.
"""

from __future__ import annotations

from typing import Final

from gourmetgram.common import names

STEP6: Final = (
    f"keep the generator running (sudo systemctl start gourmetgram-generator) for at least "
    f"{names.LABEL_HORIZON_MINUTES + 1} minutes, then in Airflow (port 8080) run {names.DAG_AGGREGATION} and, "
    f"once it is green, {names.DAG_ETL} (lab step 6); check with: sudo gourmetgram verify-pipeline"
)
TABLE_HINTS: Final = {
    names.ICEBERG_TRAINING_DATA: STEP6,
    names.ICEBERG_LARGE_TRAINING_DATA: "create it first: sudo gourmetgram generate-large-dataset (lab step 7a)",
    names.ICEBERG_EVENTS: f"turn on (or trigger) {names.DAG_AGGREGATION} in Airflow and wait for it to be green",
}


class LabError(Exception):
    """A failure with a hint for the student. ``str()`` gives both."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  what to do: {self.hint}" if self.hint else self.message


class NoTrainingRows(LabError, ValueError):
    def __init__(self, table: str = names.ICEBERG_TRAINING_DATA) -> None:
        hint = TABLE_HINTS.get(table, STEP6)
        super().__init__(f"no training rows in {table}", hint)


class MissingTable(LabError, LookupError):
    def __init__(self, identifier: str) -> None:
        super().__init__(f"Iceberg table {identifier} does not exist", TABLE_HINTS.get(identifier, ""))


def explain(exc: BaseException) -> LabError | None:
    """A LabError for a known infrastructure failure, else None (let it surface)."""
    if isinstance(exc, LabError):
        return exc
    kind = f"{type(exc).__module__}.{type(exc).__name__}"
    text = str(exc).splitlines()[0][:300] if str(exc) else kind
    if kind.endswith("NoSuchTableError"):
        known = [t for t in TABLE_HINTS if text.endswith(t)]
        return MissingTable(known[0]) if known else LabError(f"Iceberg table missing: {text}")
    if kind.startswith("sqlalchemy.exc.") and "OperationalError" in kind:
        return LabError(
            f"cannot reach PostgreSQL: {text}",
            "is it running? systemctl status postgresql; on the host run the CLI as sudo gourmetgram …",
        )
    if kind.startswith("botocore.exceptions.") and ("Connect" in kind or "Endpoint" in kind):
        return LabError(f"cannot reach MinIO: {text}", "is it running? systemctl status minio")
    if kind.startswith("botocore.exceptions.") and "NoCredentials" in kind:
        return LabError("no S3 credentials", "run the CLI as sudo gourmetgram … (it reads the service environment)")
    if kind.startswith("confluent_kafka.") or "KafkaException" in kind:
        return LabError(f"cannot reach the Kafka broker: {text}", "is it running? systemctl status kafka (or redpanda)")
    return None

"""Batch ETL (lab step 6): Kafka → event tables in Iceberg, Postgres → raw Parquet → features →
moderation.training_data. Plain functions, importable and testable without Airflow; the DAG files
under dags/ only wire them into tasks."""

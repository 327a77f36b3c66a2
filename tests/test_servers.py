"""Smoke tests of the local test servers (tests/servers.py, tests/conftest.py)."""

import io
import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

import servers


# ---- S3 (moto) -------------------------------------------------------------------------------

def test_s3_put_get_and_paginate(s3):
    s3.create_bucket(Bucket="cur-bucket")
    s3.put_object(Bucket="cur-bucket", Key="cur/manifest.json", Body=b'{"ok": true}')
    assert s3.get_object(Bucket="cur-bucket", Key="cur/manifest.json")["Body"].read() == b'{"ok": true}'

    keys = [f"cur/data/part-{i:03d}.parquet" for i in range(30)]
    for key in keys:
        s3.put_object(Bucket="cur-bucket", Key=key, Body=key.encode())
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket="cur-bucket", Prefix="cur/data/", PaginationConfig={"PageSize": 7}
        )
    )
    assert [p["KeyCount"] for p in pages] == [7, 7, 7, 7, 2]
    assert all(p["IsTruncated"] for p in pages[:-1]) and not pages[-1]["IsTruncated"]
    assert [o["Key"] for p in pages for o in p["Contents"]] == keys


def test_s3_reset_drops_everything(s3, s3_server):
    s3.create_bucket(Bucket="to-be-dropped")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["to-be-dropped"]
    s3_server.reset()
    assert s3.list_buckets()["Buckets"] == []


def test_s3_no_server_fails():
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{servers.free_port()}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
        **servers.aws_client_kwargs(),
    )
    with pytest.raises(EndpointConnectionError):
        client.list_buckets()


# ---- BigQuery (local-bigquery) ---------------------------------------------------------------

def _cur_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "bill_billing_period_start_date": pa.array([date(2024, 2, 1), date(2024, 2, 1)], pa.date32()),
        "line_item_usage_start_date": pa.array(
            [datetime(2024, 2, 3, 10, tzinfo=timezone.utc), datetime(2024, 2, 4, 11, tzinfo=timezone.utc)],
            pa.timestamp("us", tz="UTC"),
        ),
        "line_item_unblended_cost": pa.array(
            [Decimal("0.0000000186"), Decimal("1.1")], pa.decimal128(38, 10)
        ),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_bigquery_partitioned_table_parquet_load_and_exact_sum(bq, bq_limits):
    from google.cloud import bigquery

    ds = bq.create_dataset(f"smoke_{uuid.uuid4().hex[:12]}", **bq_limits.call)
    table = bigquery.Table(
        f"{bq.project}.{ds.dataset_id}.cur",
        schema=[
            bigquery.SchemaField("bill_billing_period_start_date", "DATE"),
            bigquery.SchemaField("line_item_usage_start_date", "TIMESTAMP"),
            bigquery.SchemaField("line_item_unblended_cost", "BIGNUMERIC"),
        ],
    )
    table.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.MONTH, field="bill_billing_period_start_date"
    )
    table.clustering_fields = ["line_item_usage_start_date"]
    bq.create_table(table, **bq_limits.call)

    job = bq.load_table_from_file(
        io.BytesIO(_cur_parquet()),
        table.reference,
        job_config=bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        ),
        **bq_limits.upload,
    )
    job.result(**bq_limits.wait)
    assert job.output_rows == 2

    got = bq.get_table(table.reference, **bq_limits.call)
    assert got.time_partitioning.type_ == "MONTH"
    assert got.time_partitioning.field == "bill_billing_period_start_date"
    assert got.clustering_fields == ["line_item_usage_start_date"]
    assert {f.name: f.field_type for f in got.schema} == {
        "bill_billing_period_start_date": "DATE",
        "line_item_usage_start_date": "TIMESTAMP",
        "line_item_unblended_cost": "BIGNUMERIC",
    }
    assert got.num_rows == 2

    rows = list(bq_limits.query(
        bq, f"SELECT SUM(line_item_unblended_cost) AS total FROM `{table.table_id}`",
        job_config=bigquery.QueryJobConfig(default_dataset=ds.reference),
    ))
    assert rows[0]["total"] == Decimal("1.1000000186")
    assert str(rows[0]["total"]) == "1.1000000186"

    bq.delete_dataset(ds, delete_contents=True, **bq_limits.call)


def test_bigquery_no_server_fails_fast():
    from google.api_core.client_options import ClientOptions
    from google.api_core.exceptions import RetryError
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    from requests.exceptions import ConnectionError as RequestsConnectionError

    client = bigquery.Client(
        project=servers.BQ_PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{servers.free_port()}"),
    )
    limits = servers.BQLimits(deadline=2, timeout=2)
    start = time.monotonic()
    with pytest.raises((RetryError, RequestsConnectionError)):
        list(client.list_datasets(**limits.call))
    assert time.monotonic() - start < 10

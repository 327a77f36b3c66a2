"""Shared pytest fixtures of finops_nb."""

import os
import sys
from pathlib import Path

import pytest

# ======================================================================================
# Local test servers (S3 via moto, BigQuery via local-bigquery, Azure Blob Storage via Azurite):
# see tests/servers.py and scripts/setup-test-servers.sh. Fixtures: s3_server, bq_server,
# azurite_server (session), s3, bq, bq_limits, blob_container.
# A server that fails to start makes the tests that use it ERROR; they are never skipped.
# ======================================================================================
sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402

# Before any client library is imported by a test: dummy AWS credentials, no cloud
# metadata probes (google-auth reads GCE_METADATA_* when it is first imported).
servers.apply_offline_env()


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 for the whole session (``.url``, ``.reset()``)."""
    server = servers.start_s3_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bq_server():
    """A local-bigquery server on 127.0.0.1 for the whole session (``.url``, ``.project``).

    Its state is kept across tests: create datasets with unique names."""
    server = servers.start_bigquery_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_server():
    """Azurite's blob service on 127.0.0.1 for the whole session (``.url``: the blob endpoint
    ``http://127.0.0.1:PORT/devstoreaccount1``, ``.connection_string``, ``.account_key``).

    Its state is kept across tests: use the ``blob_container`` fixture for a fresh container."""
    server = servers.start_azurite()
    yield server
    server.stop()


_container_seq = iter(range(1, 1 << 30))


@pytest.fixture
def blob_container(azurite_server):
    """A new, empty container on Azurite (an azure-storage-blob ``ContainerClient`` with the
    account key and short retries), deleted after the test."""
    from azure.storage.blob import ContainerClient, ExponentialRetry

    client = ContainerClient.from_connection_string(
        azurite_server.connection_string, f"test-{os.getpid()}-{next(_container_seq)}",
        retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=2,
                                      random_jitter_range=0.2),
        connection_timeout=5, read_timeout=60,
    )
    client.create_container()
    yield client
    if azurite_server.alive():
        try:
            client.delete_container()
        except Exception:
            pass
    client.close()


@pytest.fixture
def s3(s3_server):
    """A boto3 S3 client bound to the moto server, whose state is reset before the test."""
    import boto3
    from botocore.config import Config

    s3_server.reset()
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        config=Config(retries={"max_attempts": 2, "mode": "standard"},
                      connect_timeout=5, read_timeout=60),
        **servers.aws_client_kwargs(),
    )
    yield client
    client.close()


@pytest.fixture
def bq(bq_server):
    """A google.cloud.bigquery.Client bound to the emulator, with anonymous credentials."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=bq_server.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bq_server.url),
    )
    yield client
    client.close()


@pytest.fixture
def bq_limits():
    """Short retry deadlines and timeouts for BigQuery calls (see ``servers.BQLimits``)."""
    return servers.BQLimits()


# ====================== end of local test servers ====================================

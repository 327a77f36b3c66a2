"""Real local test servers, run as child processes on 127.0.0.1.

- S3: ``moto_server`` from the test venv (``moto[server]``).
- BigQuery: ``local-bigquery`` 0.4.0 from its own Python 3.13 venv, built once and cached by
  ``scripts/setup-test-servers.sh`` (see that script for why duckdb is pinned to 1.5.5).
- Azure Blob Storage: Azurite 3.35.0 (npm), installed once into the same cache by that script,
  run with Node as ``azurite-blob`` (telemetry off, API version check off).

Plain helpers, no pytest needed::

    srv = start_s3_server()
    try:
        boto3.client("s3", endpoint_url=srv.url, **aws_client_kwargs())
    finally:
        srv.stop()

Nothing here may contact a non-loopback address: every server binds to 127.0.0.1, and
``OFFLINE_ENV`` holds dummy AWS credentials and settings that stop google-auth, botocore and
azure-identity from probing cloud metadata services (``apply_offline_env()`` sets them in
``os.environ``); Azurite is started with ``--disableTelemetry``.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup-test-servers.sh"
LOOPBACK = "127.0.0.1"
BQ_PROJECT = "finops-test"

# A port on the loopback address where nothing listens: metadata probes that slip through
# fail at once instead of leaving the machine.
_DEAD_LOOPBACK = f"{LOOPBACK}:1"

OFFLINE_ENV: dict[str, str] = {
    # AWS: dummy credentials, fixed region, no instance-metadata lookups, no ~/.aws files.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    # Google: no GCE metadata check (google-auth compares with the lowercase "true"), and
    # should anything still probe, the metadata "server" is a dead loopback port.
    "NO_GCE_CHECK": "true",
    "GCE_METADATA_HOST": _DEAD_LOOPBACK,
    "GCE_METADATA_ROOT": _DEAD_LOOPBACK,
    "GCE_METADATA_IP": _DEAD_LOOPBACK,
    "GOOGLE_CLOUD_PROJECT": BQ_PROJECT,
    # Azure: should a DefaultAzureCredential still ask the instance metadata service for a
    # token, it asks a dead loopback port (azure-identity and msal read this variable).
    "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{_DEAD_LOOPBACK}",
}
# Variables that would point clients at real accounts or endpoints.
_UNSET_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "BIGQUERY_EMULATOR_HOST",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)
# Azurite reads its accounts and a database URL from these: the tests use the default account.
_AZURITE_SETTINGS_ENV = ("AZURITE_ACCOUNTS", "AZURITE_DB", "NODE_OPTIONS")
# local-bigquery reads its settings (pydantic-settings, case-insensitive) from these names.
_LOCALBQ_SETTINGS_ENV = (
    "BIGQUERY_PORT", "BIGQUERY_HOST", "GRPC_PORT", "DATA_DIR", "DEFAULT_PROJECT_ID",
    "DEFAULT_DATASET_ID", "CALLER", "GROUPS", "POSTGRES_CONNECTION_ID", "GCS_LOCAL_ROOT",
    "STORAGE_EMULATOR_HOST", "POSTGRES_URI",
)


def _with_no_proxy(env: dict[str, str]) -> None:
    """Keep loopback traffic away from any HTTP proxy configured on the machine."""
    for name in ("NO_PROXY", "no_proxy"):
        parts = [p for p in env.get(name, "").split(",") if p]
        for host in (LOOPBACK, "localhost"):
            if host not in parts:
                parts.append(host)
        env[name] = ",".join(parts)


def offline_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: ``os.environ``) with ``OFFLINE_ENV`` applied."""
    env = dict(os.environ if base is None else base)
    for name in _UNSET_ENV:
        env.pop(name, None)
    env.update(OFFLINE_ENV)
    _with_no_proxy(env)
    return env


def apply_offline_env() -> None:
    """Apply ``offline_env()`` to ``os.environ`` of this process (before clients are made)."""
    env = offline_env()
    for name in _UNSET_ENV:
        os.environ.pop(name, None)
    os.environ.update({k: env[k] for k in (*OFFLINE_ENV, "NO_PROXY", "no_proxy")})


def aws_client_kwargs() -> dict[str, str]:
    """Explicit dummy credentials for ``boto3.client(...)``: never the real ones."""
    return {
        "aws_access_key_id": OFFLINE_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": OFFLINE_ENV["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": OFFLINE_ENV["AWS_SESSION_TOKEN"],
        "region_name": OFFLINE_ENV["AWS_DEFAULT_REGION"],
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# Direct opener: never through a proxy.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_answers(url: str, method: str = "GET", timeout: float = 2.0) -> bool:
    """True when ``url`` answers HTTP at all (any status code)."""
    try:
        with _opener.open(urllib.request.Request(url, method=method), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM if the test process dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_running: set["LocalServer"] = set()


@dataclasses.dataclass(eq=False)
class LocalServer:
    """A server child process: ``url``, ``pid``, ``stop()``, ``log_tail()``."""

    name: str
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    workdir: Path
    extra: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process by its pid, wait, SIGKILL after ``timeout`` s; remove its files."""
        _running.discard(self)
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{LOOPBACK}:{self.port}{path}"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server (pid {self.pid}) exited with code "
                    f"{self.process.returncode} before answering {url}\n"
                    f"---- {self.log_path} ----\n{self.log_tail()}"
                )
            if http_answers(url, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} server (pid {self.pid}) did not answer {url} within "
                    f"{timeout:.0f} s\n---- {self.log_path} ----\n{self.log_tail()}"
                )
            time.sleep(0.1)


@dataclasses.dataclass(eq=False)
class S3Server(LocalServer):
    def reset(self) -> None:
        """Drop every bucket and object (moto's ``POST /moto-api/reset``)."""
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST", data=b"")
        with _opener.open(req, timeout=10) as resp:
            resp.read()


@dataclasses.dataclass(eq=False)
class BigQueryServer(LocalServer):
    project: str = BQ_PROJECT

    @property
    def grpc_address(self) -> str:
        """The BigQuery Storage API (gRPC) address of the emulator."""
        return self.extra["grpc_address"]


def _launch(cls, name, make_cmd, ready_path, timeout, env, attempts=3, url_path="", **fields):
    """Start ``make_cmd(port, workdir)`` on a free port; retry on a fresh port if the process
    dies at once (e.g. the port was taken in between); wait until it answers HTTP.
    The server's ``url`` is ``http://127.0.0.1:PORT`` + ``url_path``."""
    last_error: Exception | None = None
    for _ in range(attempts):
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix=f"finops-{name.lower()}-"))
        log_path = workdir / f"{name.lower()}.log"
        cmd, extra = make_cmd(port, workdir)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
                start_new_session=True,  # a Ctrl-C in the terminal is handled by the tests
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )
        server = cls(name=name, url=f"http://{LOOPBACK}:{port}{url_path}", port=port, process=proc,
                     log_path=log_path, workdir=workdir, extra=extra, **fields)
        _running.add(server)
        try:
            server.wait_ready(ready_path, timeout)
            return server
        except RuntimeError as e:
            died_early = not server.alive()
            last_error = e
            if not died_early:  # timed out: no point in trying again
                server.stop()
                raise
            # keep the log of a failed attempt in the error, then try another port
            server.stop()
    raise RuntimeError(f"{name} server failed to start {attempts} times") from last_error


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


class BQLimits:
    """Short deadlines for BigQuery calls: with its defaults the client retries a 5xx or a
    refused connection (e.g. an emulator internal error, or a dead emulator) for 10 minutes,
    and re-runs failed queries for longer still. Pass these explicitly::

        bq.create_dataset(ds, retry=bq_limits.retry, timeout=bq_limits.timeout)
        job = bq.load_table_from_file(f, table, job_config=cfg, **bq_limits.upload)
        job.result(**bq_limits.wait)
        rows = bq_limits.query(bq, "SELECT 1")
    """

    def __init__(self, deadline: float = 10.0, timeout: float = 30.0):
        from google.cloud.bigquery.retry import DEFAULT_RETRY

        self.retry = DEFAULT_RETRY.with_deadline(deadline)  # API calls
        self.timeout = timeout  # one HTTP request, or waiting for a job
        self.job_retry = None  # never re-run a failed query job

    @property
    def call(self) -> dict:
        return {"retry": self.retry, "timeout": self.timeout}

    @property
    def upload(self) -> dict:
        """For ``load_table_from_file``/``_dataframe``: they take no ``retry``."""
        return {"num_retries": 1, "timeout": self.timeout}

    @property
    def wait(self) -> dict:
        return {"retry": self.retry, "timeout": self.timeout}

    def query(self, client, sql: str, job_config=None):
        job = client.query(sql, job_config=job_config, job_retry=self.job_retry, **self.call)
        return job.result(job_retry=self.job_retry, **self.wait)


# ---- S3 (moto) -------------------------------------------------------------------------------

def _moto_command() -> list[str]:
    exe = Path(sys.executable).parent / "moto_server"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "moto.server"]


def start_s3_server(timeout: float = 20.0) -> S3Server:
    """``moto_server -H 127.0.0.1 -p PORT`` from this interpreter's venv, ready to use."""

    def make_cmd(port, workdir):
        return [*_moto_command(), "-H", LOOPBACK, "-p", str(port)], {}

    return _launch(S3Server, "S3", make_cmd, "/", timeout, offline_env())


# ---- BigQuery (local-bigquery) ---------------------------------------------------------------

def servers_cache_dir() -> Path:
    return Path(
        os.environ.get("FINOPS_TEST_SERVERS_DIR")
        or Path.home() / ".cache" / "finops_nb" / "test-servers"
    )


def _clean_python_env(env: dict[str, str]) -> dict[str, str]:
    """Keep this (test) interpreter's settings out of the Python 3.13 emulator venv."""
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH"):
        env.pop(name, None)
    return env


def _run_setup(part: str, timeout: float) -> Path:
    """``scripts/setup-test-servers.sh PART``: the single source of truth for the pinned
    versions; when the part's stamp matches it returns in milliseconds, so it is simply run
    every time. Returns the cache dir."""
    env = _clean_python_env(offline_env())
    env["FINOPS_TEST_SERVERS_DIR"] = str(servers_cache_dir())
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT), part], env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{SETUP_SCRIPT} failed with code {proc.returncode}\n"
            f"{proc.stderr[-4000:]}{proc.stdout[-2000:]}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def ensure_bigquery_env(timeout: float = 1800.0) -> Path:
    """Build the emulator's venv and HOME if needed. Returns the cache dir."""
    return _run_setup("bigquery", timeout)


def start_bigquery_server(timeout: float = 60.0, project: str = BQ_PROJECT) -> BigQueryServer:
    """``local-bigquery`` on free REST and gRPC ports with a fresh data dir, ready to use."""
    cache = ensure_bigquery_env()
    exe = cache / "venv-localbq" / "bin" / "local-bigquery"
    env = _clean_python_env(offline_env())
    for name in list(env):
        if name.upper() in _LOCALBQ_SETTINGS_ENV:
            del env[name]
    env["HOME"] = str(cache / "home-localbq")  # holds .duckdb/extensions (icu, ducklake, spatial)

    def make_cmd(port, workdir):
        grpc_port = free_port()
        cmd = [str(exe), "serve", "--host", LOOPBACK, "--port", str(port),
               "--grpc-port", str(grpc_port), "--project", project,
               "--data-dir", str(workdir / "data")]
        return cmd, {"grpc_address": f"{LOOPBACK}:{grpc_port}"}

    return _launch(BigQueryServer, "BigQuery", make_cmd,
                   f"/bigquery/v2/projects/{project}/datasets", timeout, env, project=project)


# ---- Azure Blob Storage (Azurite) ------------------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (documented by Microsoft; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclasses.dataclass(eq=False)
class AzuriteServer(LocalServer):
    """``url`` is the blob endpoint ``http://127.0.0.1:PORT/devstoreaccount1``."""

    account: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};"
                f"AccountKey={self.account_key};BlobEndpoint={self.url};")


def ensure_azurite(timeout: float = 900.0) -> Path:
    """Install Azurite into the cache if needed. Returns its ``azurite-blob`` executable."""
    return _run_setup("azurite", timeout) / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def start_azurite(timeout: float = 30.0) -> AzuriteServer:
    """Azurite's blob service on a free port with a fresh data folder, ready to use.

    ``--disableTelemetry``: else Azurite sends usage data to an internet endpoint.
    ``--skipApiVersionCheck``: else a current azure-storage-blob is refused (its API version is
    newer than Azurite's). ``--loose``: ignore headers Azurite does not know."""
    exe = ensure_azurite()
    env = offline_env()
    for name in _AZURITE_SETTINGS_ENV:
        env.pop(name, None)

    def make_cmd(port, workdir):
        (workdir / "data").mkdir()
        cmd = [str(exe), "--blobHost", LOOPBACK, "--blobPort", str(port),
               "--location", str(workdir / "data"), "--skipApiVersionCheck", "--silent",
               "--loose", "--disableTelemetry"]
        return cmd, {}

    # Azurite answers 400/403 to an unsigned listing: any answer means it is up.
    return _launch(AzuriteServer, "Azurite", make_cmd, f"/{AZURITE_ACCOUNT}?comp=list", timeout,
                   env, url_path=f"/{AZURITE_ACCOUNT}")

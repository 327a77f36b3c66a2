"""AzureStore against a real Azurite server (tests/servers.py): listing, reading and downloading
blobs as Cost Management exports lay them out, and every error a run can meet mapped to the
right FinopsError (missing blob or container, refused access, dead or throttling endpoint)."""

import hashlib
import ipaddress
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import servers
from faults_helpers import FaultProxy
from finops_nb.core import ConfigError, InputError, TransientError
from finops_nb.storage import AZURE_TRANSFER, AzureStore, Obj, azure_container, open_azure_store, plain_md5

MiB = 1 << 20
DAY = "exports/daily/costs-actual/20240101-20240131"


def _upload(client, name, data, md5=False, blocks=None, metadata=None):
    """Upload ``data`` as blob ``name``: in one request (Azurite, like Azure, then stores its
    Content-MD5), with ``md5=True`` an explicit Content-MD5, or with ``blocks=N`` as N staged
    blocks committed as a list (no Content-MD5, as large exports often have)."""
    from azure.storage.blob import BlobBlock, ContentSettings

    blob = client.get_blob_client(name)
    if blocks:
        step = -(-len(data) // blocks)
        ids = []
        for i in range(0, len(data), step):
            ids.append(f"{i:012d}")
            blob.stage_block(ids[-1], data[i:i + step])
        blob.commit_block_list([BlobBlock(block_id=b) for b in ids])
    else:
        settings = ContentSettings(content_md5=bytearray(hashlib.md5(data).digest())) if md5 else None
        blob.upload_blob(data, overwrite=True, content_settings=settings, metadata=metadata)


@pytest.fixture
def exports(blob_container):
    """A container laid out like an export (names with spaces and non-ASCII letters, a large
    blob, a directory marker as Data Lake Storage lists it); returns (client, {name: bytes})."""
    rng = __import__("random").Random(13)
    blobs = {
        f"{DAY}/manifest.json": b'{"runInfo": {"runId": "r1"}}',
        f"{DAY}/run 1/part_0 costs.csv": b"Date,CostInBillingCurrency\n01/31/2024,0.0000000186\n" * 200,
        f"{DAY}/run 1/Mañana Ünïcode コスト.csv.gz": rng.randbytes(3000),
        f"{DAY}/run 1/big.csv.gz": rng.randbytes(20 * MiB + 12345),  # > 8 MiB: several ranges
        f"{DAY}/run 1/blocks.csv": rng.randbytes(300_000),
        f"{DAY}/run 1/empty.csv": b"",
        "exports/daily/costs-amortized/20240101-20240131/x.csv": b"a\n",
        "exports/dailyish.csv": b"not under exports/daily/\n",
        "exports/monthly/costs-actual/20240101-20240131/y.csv": b"b\n",
    }
    for name, data in blobs.items():
        if name.endswith("big.csv.gz"):
            _upload(blob_container, name, data, blocks=5)
        elif name.endswith("blocks.csv"):
            _upload(blob_container, name, data, blocks=3)
        else:
            _upload(blob_container, name, data, md5=name.endswith(".gz"))
    # a directory of a hierarchical namespace: an empty blob marked hdi_isfolder
    _upload(blob_container, f"{DAY}/run 1", b"", metadata={"hdi_isfolder": "true"})
    return blob_container, blobs


def _store(server, container, **kw):
    return AzureStore(azure_container(account_url=server.url, container=container,
                                      account_key=server.account_key, **kw))


def test_list_head_read_match_what_was_uploaded(azurite_server, exports):
    client, blobs = exports
    store = _store(azurite_server, client.container_name)
    assert store.name == f"{azurite_server.url}/{client.container_name}"
    assert (store.account, store.container) == ("devstoreaccount1", client.container_name)

    objs = store.list("exports/daily/")
    want = sorted(k for k in blobs if k.startswith("exports/daily/"))
    assert [o.key for o in objs] == want  # the hdi_isfolder marker and exports/dailyish.csv left out
    assert all(isinstance(o, Obj) for o in objs)
    by_key = {o.key: o for o in objs}
    for key in want:
        o = by_key[key]
        assert o.size == len(blobs[key]), key
        assert o.etag.startswith("0x") and plain_md5(o.etag) == ""  # a version stamp, never an MD5
        assert o.last_modified.tzinfo is not None
        if key.endswith(("blocks.csv", "big.csv.gz")):
            assert o.md5 == "", key  # committed from blocks: no Content-MD5
        else:  # one request (Azurite stores the MD5, as Azure does) or an explicit Content-MD5
            assert o.md5 == hashlib.md5(blobs[key]).hexdigest(), key
    assert [o.key for o in store.list(f"{DAY}/run 1/")] == sorted(k for k in blobs if k.startswith(f"{DAY}/run 1/"))
    assert [o.key for o in store.list("exports/daily")] == sorted(k for k in blobs if k.startswith("exports/daily"))
    assert [o.key for o in store.list()] == sorted(blobs)
    assert store.list("nothing/here/") == []

    paged = AzureStore(store.client, page_size=2)  # several pages of the listing
    assert paged.list("exports/") == store.list("exports/")

    uni = f"{DAY}/run 1/Mañana Ünïcode コスト.csv.gz"
    assert store.head(uni) == by_key[uni]
    assert store.read(uni) == blobs[uni]
    assert store.read(f"{DAY}/manifest.json") == blobs[f"{DAY}/manifest.json"]
    assert store.read(f"{DAY}/run 1/empty.csv") == b""


def test_download_in_ranges_with_progress(azurite_server, exports, tmp_path):
    client, blobs = exports
    big = f"{DAY}/run 1/big.csv.gz"
    with FaultProxy(azurite_server.url) as proxy:
        store = AzureStore(azure_container(account_url=f"{proxy.url}/devstoreaccount1", container=client.container_name,
                                           account_key=azurite_server.account_key))
        seen = []
        t = time.monotonic()
        store.download(big, tmp_path / "big.csv.gz", on_bytes=seen.append)
        elapsed = time.monotonic() - t
    assert (tmp_path / "big.csv.gz").read_bytes() == blobs[big]
    assert sum(seen) == len(blobs[big]) and len(seen) >= 3 and min(seen) > 0
    gets = [o for m, p, o in proxy.log if m == "GET" and "big.csv.gz" in p]
    want = -(-len(blobs[big]) // AZURE_TRANSFER["max_chunk_get_size"])
    assert len(gets) == want, proxy.log  # the first range, then the rest in parallel
    print(f"20 MiB in {elapsed:.2f} s through the proxy")

    for key in (f"{DAY}/run 1/Mañana Ünïcode コスト.csv.gz", f"{DAY}/run 1/empty.csv", f"{DAY}/run 1/blocks.csv"):
        seen = []
        dest = tmp_path / Path(key).name
        store = _store(azurite_server, client.container_name)
        store.download(key, dest, on_bytes=seen.append)
        assert dest.read_bytes() == blobs[key] and sum(seen) == len(blobs[key])
        store.download(key, dest)  # no progress callback
        assert dest.read_bytes() == blobs[key]


def test_missing_blob_and_container_are_input_errors(azurite_server, exports, tmp_path):
    client, _ = exports
    store = _store(azurite_server, client.container_name)
    key = f"{DAY}/run 1/part_9 gone.csv"
    for op in (lambda: store.head(key), lambda: store.read(key), lambda: store.download(key, tmp_path / "x")):
        with pytest.raises(InputError) as e:
            op()
        msg = str(e.value)
        assert msg.startswith(f"{store.name}/{key}: ")
        assert f"blob {key!r} not found in container {client.container_name!r} of storage account 'devstoreaccount1'" in msg
    assert not (tmp_path / "x").exists()

    nowhere = _store(azurite_server, "no-such-container")
    for op in (lambda: nowhere.list("exports/"), lambda: nowhere.head(key), lambda: nowhere.download(key, tmp_path / "y")):
        with pytest.raises(InputError, match="container 'no-such-container' does not exist in storage account 'devstoreaccount1'"):
            op()
    assert not (tmp_path / "y").exists()


def test_refused_access_is_a_config_error_naming_the_setting(azurite_server, exports, tmp_path):
    import base64

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    client, blobs = exports
    name = client.container_name
    wrong = base64.b64encode(b"w" * 64).decode()
    key = f"{DAY}/manifest.json"
    for store, setting in [
        (AzureStore(azure_container(account_url=azurite_server.url, container=name, account_key=wrong)),
         "[azure] connection_string or account_key"),
        (AzureStore(azure_container(container=name,
                                    connection_string=azurite_server.connection_string.replace(azurite_server.account_key, wrong))),
         "[azure] connection_string or account_key"),
        (open_azure_store({"azure.account_url": azurite_server.url, "azure.container": name, "azure.account_key": wrong}),
         "[azure] account_key"),
    ]:
        for op in (lambda: store.list("exports/"), lambda: store.head(key), lambda: store.read(key)):
            with pytest.raises(ConfigError) as e:
                op()
            assert "access refused" in str(e.value) and str(e.value).endswith(f"check {setting}"), str(e.value)

    # a key that is no key (not base64): it cannot sign, nothing is sent
    bad = AzureStore(azure_container(account_url=azurite_server.url, container=name, account_key="not a key!"))
    with pytest.raises(ConfigError, match=r"the request could not be signed .*check \[azure\] connection_string or account_key"):
        bad.list()

    # a SAS token: valid works, expired is refused and names [azure] sas_token
    def sas(expiry):
        return generate_container_sas("devstoreaccount1", name, account_key=azurite_server.account_key,
                                      permission=ContainerSasPermissions(read=True, list=True), expiry=expiry)
    ok = AzureStore(azure_container(account_url=azurite_server.url, container=name,
                                    sas_token=sas(datetime.now(timezone.utc) + timedelta(hours=1))))
    assert [o.key for o in ok.list(f"{DAY}/")] == sorted(k for k in blobs if k.startswith(f"{DAY}/"))
    assert ok.read(key) == blobs[key]
    old = open_azure_store({"azure.account_url": azurite_server.url, "azure.container": name,
                            "azure.sas_token": sas(datetime.now(timezone.utc) - timedelta(hours=1))})
    with pytest.raises(ConfigError, match=r"access refused .*check \[azure\] sas_token"):
        old.list()

    # a connection string read from the config works as the key does
    cs = open_azure_store({"azure.connection_string": azurite_server.connection_string, "azure.container": name})
    assert cs.list(f"{DAY}/") == ok.list(f"{DAY}/")


def _quick(**kw):
    "A short retry policy, for tests that check mapping rather than the default policy's timing."
    from azure.storage.blob import ExponentialRetry

    return ExponentialRetry(initial_backoff=0.05, increment_base=0.2, retry_total=2, random_jitter_range=0.02, **kw)  # waits 0.25, 0.09 s


def test_stopped_server_is_transient_within_30_s(tmp_path):
    server = servers.start_azurite()
    try:
        store = AzureStore(azure_container(container="gone", connection_string=server.connection_string))
        store.client.create_container()
        _upload(store.client, "a.csv", b"x")
        assert [o.key for o in store.list()] == ["a.csv"]
        quick = AzureStore(azure_container(container="gone", connection_string=server.connection_string, retry_policy=_quick()))
    finally:
        server.stop()
    t = time.monotonic()
    with pytest.raises(TransientError) as e:
        store.list()  # the default policy: 4 tries, about 3 + 5 + 9 s apart
    elapsed = time.monotonic() - t
    print(f"stopped server: TransientError after {elapsed:.1f} s")
    assert 10 < elapsed < 30, elapsed
    msg = str(e.value)
    assert msg.startswith(store.name) and "cannot reach Azure Storage at 127.0.0.1:" in msg
    assert "check [azure] account_url" in msg
    with pytest.raises(TransientError, match="cannot reach Azure Storage"):
        quick.download("a.csv", tmp_path / "a.csv")
    assert not (tmp_path / "a.csv").exists()


def test_503_then_success_and_throttling_that_lasts(azurite_server, exports, tmp_path):
    client, blobs = exports
    big, small = f"{DAY}/run 1/big.csv.gz", f"{DAY}/manifest.json"
    busy = dict(status=503, code="ServerBusy", message="The server is busy.")
    with FaultProxy(azurite_server.url) as proxy:
        url = f"{proxy.url}/devstoreaccount1"
        store = AzureStore(azure_container(account_url=url, container=client.container_name,
                                           account_key=azurite_server.account_key))
        # the default policy: a 503 on the first range of a download, then success
        proxy.add(match=lambda m, p, b: m == "GET" and "big.csv.gz" in p, times=1, **busy)
        t = time.monotonic()
        seen = []
        store.download(big, tmp_path / "big", on_bytes=seen.append)
        print(f"503 then success in {time.monotonic() - t:.1f} s")
        assert (tmp_path / "big").read_bytes() == blobs[big] and sum(seen) == len(blobs[big])
        assert proxy.outcomes()[:2] == ["503 ServerBusy", "206"], proxy.outcomes()

        # a 503 on the listing, a 500 on a later range: retried (a short policy, to keep the test fast)
        quick = AzureStore(azure_container(account_url=url, container=client.container_name,
                                           account_key=azurite_server.account_key, retry_policy=_quick()))
        proxy.clear()
        proxy.add(match=lambda m, p, b: "comp=list" in p, times=1, **busy)
        assert [o.key for o in quick.list(f"{DAY}/")] == sorted(k for k in blobs if k.startswith(f"{DAY}/"))
        gets = iter(range(1 << 20))  # the proxy calls match under its lock
        proxy.add(match=lambda m, p, b: m == "GET" and "big.csv.gz" in p and next(gets) >= 1, times=1,
                  status=500, code="InternalError", message="injected")  # not on the first range
        quick.download(big, tmp_path / "big2")
        assert (tmp_path / "big2").read_bytes() == blobs[big]
        assert proxy.outcomes().count("503 ServerBusy") == 2 and proxy.outcomes().count("500 InternalError") == 1, proxy.log

        # throttling that outlasts the retries: a TransientError, no file left
        proxy.clear()
        proxy.add(**busy)
        n = len(proxy.log)
        with pytest.raises(TransientError, match="Azure Storage answered ServerBusy after retries; try again later"):
            quick.read(small)
        assert len(proxy.log) - n == 3  # the first try and 2 retries
        with pytest.raises(TransientError, match="ServerBusy"):
            quick.download(big, tmp_path / "big3")
        assert not (tmp_path / "big3").exists()


def _sockets(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _remote_addresses(pid):
    "The remote addresses of the TCP and UDP sockets process ``pid`` holds (from /proc/net)."
    inodes, out = _sockets(pid), []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[9] in inodes:
                    out.append((table, cols[2]))
    return out


def _loopback_or_none(hex_addr):
    "True for a /proc/net address (hex, 32-bit words in host order) that is loopback or unset."
    raw = bytes.fromhex(hex_addr.split(":")[0])
    ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_azurite_only_talks_to_loopback(azurite_server, exports):
    client, _ = exports
    store = _store(azurite_server, client.container_name)
    store.list()
    remote = _remote_addresses(azurite_server.pid)
    assert remote, "no socket of Azurite found"
    assert all(_loopback_or_none(a) for _, a in remote), remote
    assert "ApplicationInsights" not in azurite_server.log_tail(200)

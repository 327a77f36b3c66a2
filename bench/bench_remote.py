"""Remote loads of the 1M-row month: `finops aws load-billing-remote --destination clickhouse` into ClickHouse's embedded
engine (chdb, through clickhouse-connect), and `--destination bigquery` into the local-bigquery emulator, each in a fresh
process from the same Parquet file.

    .venv/bin/python bench/bench_remote.py                  # ClickHouse: ~1 min per run; add --bigquery for the emulator

The Parquet file is the month exported by `finops aws export-parquet` (bench_export.py's database; built once, not
timed). ClickHouse: each run starts from an empty chdb folder ("loaded"), then a run with `--overwrite` replaces the
period in the loaded table ("replaced"); every run is checked in ClickHouse afterwards (rows and the exact sums equal
expected.json, no staging table left). `--batch-rows` sets `[database.clickhouse] batch_rows` (memory stays flat with
month size: the insert reads the file in row batches). BigQuery: the local-bigquery emulator (DuckDB inside, one
process on this machine), so its time says nothing of Google's service; it is shown beside ClickHouse because it runs
the same code path and the same checks. Results: bench/.data/results/remote-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (DATA, FINOPS, export_id, finops_env, finops_version, fresh_dir, load_expected, machine, med,  # noqa: E402
                     parquet_file, py, run, save, span)
from bench_export import ensure_loaded  # noqa: E402

CHECK_CH = r"""
import sys, clickhouse_connect
c = clickhouse_connect.get_client(dsn=sys.argv[1])
n, u, b = c.query("SELECT count(), sum(line_item_unblended_cost), sum(line_item_blended_cost) FROM finops.aws_billing_data").result_rows[0]
left = c.query("SELECT count() FROM system.tables WHERE database = 'finops' AND name LIKE '%staging%'").result_rows[0][0]
print(n, u, b, left)
"""


def check_clickhouse(url: str, exp: dict) -> dict:
    out = py(CHECK_CH, url)["out"].split()
    n, u, b, left = int(out[0]), Decimal(out[1]), Decimal(out[2]), int(out[3])
    if n != exp["rows"] or u != Decimal(exp["sums"]["lineItem/UnblendedCost"]) or b != Decimal(exp["sums"]["lineItem/BlendedCost"]) or left:
        raise SystemExit(f"{url}: {n} rows, sums {u} {b}, {left} staging tables left")
    return {"rows": n, "unblended": f"{u.normalize():f}"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "month-1m"))
    ap.add_argument("--work", default=str(DATA / "work"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-rows", type=int, default=65536)
    ap.add_argument("--bigquery", action="store_true", help="also load the local-bigquery emulator (once)")
    a = ap.parse_args(argv)
    data = Path(a.data)
    work = Path(a.work) / data.name
    exp = load_expected(data)
    exp["export_id"] = export_id(data)
    print(f"machine: {machine()}\nfinops_nb: commit {finops_version()}")
    report = {"machine": machine(), "finops_nb": finops_version(), "rows": exp["rows"], "batch_rows": a.batch_rows}
    db, staging = ensure_loaded(data, work, exp)
    pq_dir = work / "remote" / "parquet"
    env = finops_env(data, staging, pq_dir, db, "1GB")
    if not parquet_file(pq_dir, data, exp["period"]).is_file():
        run([FINOPS, "aws", "export-parquet"], env=env)
    size = parquet_file(pq_dir, data, exp["period"]).stat().st_size
    ch = {"loaded": [], "loaded_rss": [], "replaced": [], "replaced_rss": []}
    for r in range(1, a.repeats + 1):
        folder = fresh_dir(work / "remote" / "clickhouse")
        url = f"chdb://{folder}"
        e = {**env, "FINOPS__DATABASE__CLICKHOUSE__URL": url, "FINOPS__DATABASE__CLICKHOUSE__BATCH_ROWS": str(a.batch_rows)}
        x = run([FINOPS, "aws", "load-billing-remote", "--destination", "clickhouse"], env=e)
        if "loaded" not in x["out"]:
            raise SystemExit(x["out"])
        facts = check_clickhouse(url, exp)
        y = run([FINOPS, "aws", "load-billing-remote", "--destination", "clickhouse", "--overwrite"], env=e)
        if "replaced" not in y["out"]:
            raise SystemExit(y["out"])
        check_clickhouse(url, exp)
        ch["loaded"].append(x["secs"]), ch["loaded_rss"].append(x["rss_mib"])
        ch["replaced"].append(y["secs"]), ch["replaced_rss"].append(y["rss_mib"])
        print(f"  clickhouse run {r}: load {x['secs']:6.2f} s {x['rss_mib']:6.0f} MiB | replace {y['secs']:6.2f} s "
              f"{y['rss_mib']:6.0f} MiB | rows {facts['rows']:,}, unblended {facts['unblended']} (= expected.json)", flush=True)
    ch["median"] = {k: med(v) for k, v in ch.items() if isinstance(v, list)}
    report["clickhouse"], report["parquet_bytes"] = ch, size
    if a.bigquery:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import servers
        servers.apply_offline_env()
        server = servers.start_bigquery_server()
        try:
            e = {**env, "FINOPS__DATABASE__BIGQUERY__PROJECT_ID": server.project, "FINOPS__DATABASE__BIGQUERY__API_ENDPOINT": server.url,
                 "FINOPS__DATABASE__BIGQUERY__DATASET_ID": "bench_" + uuid.uuid4().hex[:8], "FINOPS__DATABASE__BIGQUERY__TIMEOUT": "3600"}
            x = run([FINOPS, "aws", "load-billing-remote", "--destination", "bigquery"], env=e, check=False)
            report["bigquery_emulator"] = {"secs": x["secs"], "rss_mib": x["rss_mib"], "rc": x["rc"], "out": x["out"][-2000:], "err": x["err"][-2000:]}
            print(f"  bigquery emulator: load {x['secs']:6.2f} s {x['rss_mib']:6.0f} MiB (finops process), exit {x['rc']}", flush=True)
        finally:
            server.stop()
    m = ch["median"]
    print(f"\n== summary (medians): ClickHouse (chdb) load {m['loaded']:.2f} s ({span(ch['loaded'])}), {m['loaded_rss']:.0f} MiB; "
          f"replace {m['replaced']:.2f} s ({span(ch['replaced'])}), {m['replaced_rss']:.0f} MiB; Parquet file {size / 1e6:.0f} MB")
    print(f"results: {save('remote', report)}")


if __name__ == "__main__":
    main()

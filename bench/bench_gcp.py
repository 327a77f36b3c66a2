"""Benchmark: `finops gcp extract-billing` (a 1M-row invoice month pulled from the local-bigquery emulator) and
`finops gcp load-billing-local` of it, time and peak RSS, through the Storage Read API and through REST pages.

    .venv/bin/python bench/bench_gcp.py [--rows 1000000] [--repeats 3] [--read-api storage,rest] [--quiet 0.7]

1. ``bench/gen_gcp_month.py`` writes (cached in ``bench/.data/gcp-<month>-<rows>/``) one month of the standard
   export in its nested form (structs, repeated credits and labels, FLOAT64 costs with 17 significant digits)
   and its exact totals (``Decimal(repr(x))`` of every double, summed exactly);
2. the project's emulator (``tests/servers.py``) is started, and the file loaded into a billing-export table
   (DAY partitions on ``export_time``), timed;
3. ``--repeats`` times per read API, each in a fresh folder, each command its own process (wall time and peak
   RSS from ``wait4``, ``bench/_common.py``): ``finops gcp extract-billing`` then ``finops gcp
   load-billing-local`` (at finops' defaults: memory_limit 1GB, the FOCUS rows built in the same transaction
   when the mapping is there); checked: the rows and the exact ``cost`` total in DuckDB equal expected.json.
Before each timed command it waits (up to ``--wait`` seconds in all) for the 1-minute load average to drop
under ``--quiet``, and records the load at the start. Results: ``bench/.data/results/gcp-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
from _common import DATA, FINOPS, fresh_dir, finops_version, machine, med, run, save, span  # noqa: E402

PERIOD = "2024-03"


class Quiet:
    "Wait for the 1-minute load average to drop under `limit` (at most `budget` seconds in all); the load seen."
    def __init__(self, limit, budget): self.limit, self.left = limit, budget
    def __call__(self):
        while os.getloadavg()[0] > self.limit and self.left > 0: time.sleep(5); self.left -= 5
        return round(os.getloadavg()[0], 2)


def env_for(server, dataset, table, work, read_api):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    e.update(FINOPS__GCP__PROJECT_ID=server.project, FINOPS__GCP__DATASET_ID=dataset, FINOPS__GCP__TABLE_ID=table,
             FINOPS__GCP__API_ENDPOINT=server.url, FINOPS__GCP__READ_API=read_api, FINOPS__GCP__TIMEOUT="900",
             FINOPS__STAGING_DIR=str(work / "staging"), FINOPS__PARQUET_DIR=str(work / "parquet"),
             FINOPS__DATABASE__DUCKDB__DATABASE_PATH=str(work / "finops.duckdb"))
    if read_api == "storage": e["FINOPS__GCP__READ_API_ENDPOINT"] = server.grpc_address
    return e


def check_loaded(db: Path, exp: dict) -> str:
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try: n, cost = con.execute("SELECT count(*), sum(cost) FROM gcp_billing_data").fetchone()
    finally: con.close()
    if n != exp["rows"] or cost != Decimal(str(exp["cost"])):
        raise SystemExit(f"loaded {n} rows, cost {cost}; expected {exp['rows']}, {exp['cost']}")
    return f"{n:,} rows, cost {cost.normalize():f} exact"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--read-api", default="storage,rest")
    ap.add_argument("--quiet", type=float, default=0.7)
    ap.add_argument("--wait", type=float, default=600)
    args = ap.parse_args()
    import servers
    import gcp_fixtures as gf
    from gen_gcp_month import write_month
    servers.apply_offline_env()
    data = DATA / f"gcp-{PERIOD.replace('-', '')}-{args.rows}"
    if (data / "expected.json").is_file() and (data / "month.parquet").is_file():
        exp = json.loads((data / "expected.json").read_text())
    else:
        exp = write_month(data / "month.parquet", args.rows, PERIOD)
    quiet = Quiet(args.quiet, args.wait)
    server = servers.start_bigquery_server(timeout=120)
    report = {"machine": machine(), "commit": finops_version(), "args": vars(args), "rows": exp["rows"],
              "mb": (data / "month.parquet").stat().st_size / 1e6, "runs": []}
    try:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery
        client = bigquery.Client(project=server.project, credentials=AnonymousCredentials(),
                                 client_options=ClientOptions(api_endpoint=server.url))
        dataset, table = "bench_gcp", gf.export_table_name("000000-000000-000000")
        client.create_dataset(f"{server.project}.{dataset}")
        gf.create_export_table(client, f"{server.project}.{dataset}.{table}")
        opts = bigquery.ParquetOptions()
        opts.enable_list_inference = True
        t = time.perf_counter()
        with open(data / "month.parquet", "rb") as fh:
            client.load_table_from_file(fh, f"{server.project}.{dataset}.{table}", timeout=900, job_config=bigquery.LoadJobConfig(
                source_format="PARQUET", schema=gf.SCHEMA_STANDARD, parquet_options=opts)).result(timeout=900)
        report["emulator_load_secs"] = round(time.perf_counter() - t, 2)
        print(f"loaded {exp['rows']:,} rows into the emulator in {report['emulator_load_secs']} s", flush=True)
        for api in args.read_api.split(","):
            for i in range(args.repeats):
                work = fresh_dir(DATA / "work" / "gcp-bench" / f"{api}-{i}")
                env = env_for(server, dataset, table, work, api)
                rec = {"read_api": api, "extract_load": quiet()}
                ext = run([FINOPS, "gcp", "extract-billing"], env=env, timeout=3600)
                rec["load_load"] = quiet()
                load = run([FINOPS, "gcp", "load-billing-local"], env=env, timeout=3600)
                rec["check"] = check_loaded(work / "finops.duckdb", exp)
                rec.update(extract_secs=ext["secs"], extract_rss=ext["rss_mib"], load_secs=load["secs"], load_rss=load["rss_mib"])
                report["runs"].append(rec)
                print(f"{api} run {i + 1}: extract {ext['secs']:.2f} s {ext['rss_mib']:.0f} MiB (load {rec['extract_load']}), "
                      f"load {load['secs']:.2f} s {load['rss_mib']:.0f} MiB (load {rec['load_load']}); {rec['check']}", flush=True)
    finally:
        server.stop()
    for api in args.read_api.split(","):
        rs = [r for r in report["runs"] if r["read_api"] == api]
        if rs:
            print(f"{api}: extract median {med([r['extract_secs'] for r in rs]):.2f} s ({span([r['extract_secs'] for r in rs])}), "
                  f"peak {max(r['extract_rss'] for r in rs):.0f} MiB; load median {med([r['load_secs'] for r in rs]):.2f} s "
                  f"({span([r['load_secs'] for r in rs])}), peak {max(r['load_rss'] for r in rs):.0f} MiB")
    print(f"results: {save('gcp', report)}")


if __name__ == "__main__":
    main()

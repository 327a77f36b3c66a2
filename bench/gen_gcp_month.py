"""Generate one invoice month of Google Cloud's STANDARD billing export as one nested Parquet file.

    .venv/bin/python bench/gen_gcp_month.py --rows 1000000 --period 2024-03 --seed 0
    .venv/bin/python bench/gen_gcp_month.py --rows 1000000 --load      # and time a load into the emulator

Writes ``<out>/month.parquet`` (default ``--out bench/.data/gcp-<period>-<rows>``): N rows in the
nested Arrow form of ``SCHEMA_STANDARD`` (``tests/gcp_fixtures.py``: RECORD -> struct, REPEATED ->
list<struct>, FLOAT -> double, TIMESTAMP -> timestamp[us, UTC]), and ``<out>/expected.json``: the
exact totals in the form of ``gcp_fixtures.expected`` (decimals as strings) plus the file's size.

The rows are built column by column with numpy and pyarrow (``take`` on small catalogues of
structs and lists, ``ListArray.from_arrays`` for the credits): no Python loop per row. They
follow ``gcp_fixtures.month_rows``: the SKUs of ``gcp_fixtures.SKUS``, hourly usage rows in the
invoice month's US Pacific window, costs ``amount_in_pricing_units * price`` as doubles (30 %
rounded to 6 decimals, Cloud Logging rows under the free allotment at 0.0, fixed values
0.123456789012 / 5e-06 / 0.1 / 0.2 / 1e-12 on the first rows), zero to two credits a row of every
type of ``gcp_fixtures.CREDIT_TYPES``, exports 2 to 30 hours after the usage (so the month's
last hours are late rows), and at the end one tax row per project, one adjustment row (with
``adjustment_info``) and one rounding_error row, all exported after the month closed except the
rounding error. Deterministic for (rows, period, seed, projects).

Totals: each double counts as ``Decimal(repr(x))`` (the shortest decimal that round-trips it),
summed exactly (``decimal.Context(prec=100)``), over the columns as READ BACK from the file.

``--load`` starts the project's local-bigquery emulator (``tests/servers.py``), creates the table
with ``gcp_fixtures.create_export_table`` (DAY-partitioned on ``export_time``), loads the file with
``LoadJobConfig(source_format=PARQUET, schema=SCHEMA_STANDARD)`` (list inference on, as real
BigQuery needs for Parquet LISTs), times the load and checks ``SELECT invoice.month, COUNT(*),
SUM(cost)`` against ``expected.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from decimal import Context, Decimal, localcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
import gcp_fixtures as gf  # noqa: E402

TYPES = gf.arrow_schema(gf.SCHEMA_STANDARD)
US = 1_000_000  # microseconds a second
SPECIAL_COSTS = (0.123456789012, 5e-06, 0.1, 0.2, 1e-12)
TEAMS, ENVS = ("payments", "search", "data", "platform", "web"), ("prod", "staging", "dev")


def _t(name: str) -> pa.DataType:
    "Arrow type of a top-level field, or of a dotted sub-field (``usage.amount``)."
    parts = name.split(".")
    t = TYPES.field(parts[0]).type
    for p in parts[1:]:
        if pa.types.is_list(t):
            t = t.value_type
        t = t.field(p).type
    return t


def _catalogue(name: str, values: list) -> pa.Array:
    "A small array of field ``name``'s type (structs or lists of structs) to ``take`` from."
    return pa.array(values, type=_t(name))


def _strings(values, idx: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.string()).take(pa.array(idx))


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us, type=pa.timestamp("us", tz="UTC"))


def build_table(rows: int = 1_000_000, period: str = "2024-03", seed: int = 0,
                projects: int = 8) -> pa.Table:
    "The month as a pyarrow Table of ``arrow_schema(SCHEMA_STANDARD)``."
    ym = gf.invoice_month(period)
    start, end = gf.month_window(ym)
    rng = np.random.Generator(np.random.PCG64(seed))
    n_special = projects + 2  # tax rows, one adjustment, one rounding error
    n = rows - n_special
    if n < len(SPECIAL_COSTS):
        raise SystemExit(f"--rows must be at least {len(SPECIAL_COSTS) + n_special}")
    account = "-".join(f"{int(v):06X}" for v in rng.integers(0, 16**6, 3))
    org, folder = (str(int(v)) for v in rng.integers(10**11, 10**12, 2))

    # ---- catalogues ------------------------------------------------------------------
    skus = gf.SKUS
    kinds = np.array([s[8] for s in skus])
    per = np.array([float(s[6]) for s in skus])
    price = np.array([float(s[7]) for s in skus])
    contract = np.ones(len(skus))
    contract[5], contract[4] = 0.85, 0.9  # effective / list price (as in month_rows)
    projs = []
    for i in range(projects):
        team, env = TEAMS[i % len(TEAMS)], ENVS[i % len(ENVS)]
        number = str(int(rng.integers(10**11, 10**12)))
        name = f"{team.title()} {env}"
        projs.append({
            "id": f"{team}-{env}-{int(rng.integers(100000, 999999))}", "number": number, "name": name,
            "labels": [{"key": "team", "value": team}, {"key": "env", "value": env}][: 1 + i % 2],
            "ancestry_numbers": f"/{org}/{folder}/",
            "ancestors": [{"resource_name": f"projects/{number}", "display_name": name},
                          {"resource_name": f"folders/{folder}", "display_name": "Engineering"},
                          {"resource_name": f"organizations/{org}", "display_name": "example.com"}]})
    project_cat = _catalogue("project", projs)
    service_cat = _catalogue("service", [{"id": s[0], "description": s[1]} for s in skus]
                             + [{"id": None, "description": "Tax"}, {"id": None, "description": "Invoice"}])
    sku_cat = _catalogue("sku", [{"id": s[2], "description": s[3]} for s in skus]
                         + [{"id": None, "description": "Sales tax: US"},
                            {"id": None, "description": "Rounding error"}])
    location_cat = _catalogue("location", [gf._location(k) for k in kinds] + [gf._location("global")])
    vm_labels = [{"key": "compute.googleapis.com/machine_spec", "value": "n2-standard-4"},
                 {"key": "compute.googleapis.com/cores", "value": "4"},
                 {"key": "compute.googleapis.com/memory", "value": "16384"}]
    system_cat = _catalogue("system_labels", [[], vm_labels])
    combos = 4  # [], [app], [app, k8s], [k8s]
    label_lists = []
    for p in projs:
        app = {"key": "app", "value": f"{p['id'].split('-')[0]}-api"}
        k8s = {"key": "goog-k8s-cluster-name", "value": "main"}
        label_lists += [[], [app], [app, k8s], [k8s]]
    labels_cat = _catalogue("labels", label_lists)
    tags_cat = _catalogue("tags", [[]] + [[{"key": "environment", "value": e, "inherited": True,
                                             "namespace": org}] for e in ENVS])

    # ---- the usage rows --------------------------------------------------------------
    weights = np.array([4, 4, 1, 2, 1, 1, 1, 2], dtype=float)
    sku = rng.choice(len(skus), size=n, p=weights / weights.sum())
    proj = rng.integers(0, projects, n)
    hours = int((end - start) / timedelta(hours=1))
    start_us = int(start.timestamp()) * US
    t0 = start_us + rng.integers(0, hours, n) * 3600 * US
    t1 = t0 + 3600 * US
    exported = t1 + rng.integers(2 * 3600 * US, 30 * 3600 * US, n)
    kind = kinds[sku]
    vm_hours = rng.choice(np.array([1.0, 2.0, 4.0, 8.0]), n) * 3600
    amount = np.where(kind == "vm", vm_hours, 0.0)
    amount = np.where(sku == 1, vm_hours * 4 * 2**30, amount)
    stored = (kind == "disk") | (kind == "bucket") | (sku == 6)
    amount = np.where(stored, rng.integers(1, 500, n) * float(2**30 * 3600), amount)
    amount = np.where(amount == 0, rng.integers(1, 80_000_000, n).astype(float), amount)
    in_pricing = amount / per[sku]
    cost_at_list = in_pricing * price[sku]
    cost = np.where(contract[sku] != 1.0, cost_at_list * contract[sku], cost_at_list)
    roll = rng.random(n)
    free = (kind == "log") & (roll < 0.35)
    rounded = ~free & (roll < 0.3)
    cost = np.where(free, 0.0, np.where(rounded, np.round(cost, 6), cost))
    cost_at_list = np.where(free, 0.0, np.where(rounded & (contract[sku] == 1.0),
                                                np.round(cost_at_list, 6), cost_at_list))
    cost[: len(SPECIAL_COSTS)] = cost_at_list[: len(SPECIAL_COSTS)] = SPECIAL_COSTS

    # credits: zero to two a row, types as in month_rows
    c = rng.random(n)
    T = {t: i for i, t in enumerate(gf.CREDIT_TYPES)}
    first = np.full(n, -1)
    second = np.full(n, -1)
    vm, lb = kind == "vm", (kind == "log") | (kind == "bq")
    other = ~vm & ~lb
    first = np.where(vm & (c < 0.5), T["SUSTAINED_USAGE_DISCOUNT"], first)
    second = np.where(vm & (c < 0.2), T["COMMITTED_USAGE_DISCOUNT"], second)
    first = np.where(lb & (c < 0.4), T["FREE_TIER"], first)
    second = np.where(lb & (c < 0.1), T["PROMOTION"], second)
    first = np.where(other & (c < 0.15), T["PROMOTION"], first)
    first = np.where(other & (c >= 0.15) & (c < 0.25), T["DISCOUNT"], first)
    second = np.where((second == T["PROMOTION"]) & (cost <= 0.05), -1, second)
    first = np.where((first == T["DISCOUNT"]) & (np.round(cost * 0.03, 6) <= 0), -1, first)
    first = np.where(cost <= 0, -1, first)
    second = np.where(first == -1, -1, second)
    ncred = (first >= 0).astype(np.int64) + (second >= 0)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(ncred, out=offsets[1:])
    owner = np.repeat(np.arange(n), ncred)
    slot = np.arange(offsets[-1]) - offsets[owner]
    ctype = np.where(slot == 0, first[owner], second[owner])
    oc = cost[owner]
    free_part = np.minimum(oc, 0.05)
    camount = np.select(
        [ctype == T["SUSTAINED_USAGE_DISCOUNT"], ctype == T["COMMITTED_USAGE_DISCOUNT"],
         ctype == T["FREE_TIER"], (ctype == T["PROMOTION"]) & (slot == 1), ctype == T["PROMOTION"],
         ctype == T["DISCOUNT"]],
        [-oc * 0.2, -oc * 0.37, -free_part, -(oc - 0.05), -oc, -np.round(oc * 0.03, 6)])
    names, full_names, ids = [], [], []
    for t in gf.CREDIT_TYPES:  # catalogue index: type * projects + project
        for p in projs:
            cr = gf._credit(t, 0.0, account, p)
            names.append(cr["name"]), full_names.append(cr["full_name"]), ids.append(cr["id"])
    cidx = ctype * projects + proj[owner]
    credit_values = pa.StructArray.from_arrays(
        [_strings(names, cidx), pa.array(camount, type=pa.float64()), _strings(full_names, cidx),
         _strings(ids, cidx), _strings(list(gf.CREDIT_TYPES), ctype)],
        fields=list(_t("credits").value_type))
    credits = pa.ListArray.from_arrays(pa.array(offsets), credit_values, type=_t("credits"))

    lroll = rng.random(n)
    label_idx = proj * combos + np.select([lroll < 0.12, lroll < 0.6, lroll < 0.68], [2, 1, 3], 0)
    tag_idx = np.where(rng.random(n) < 0.25, 1 + proj % len(ENVS), 0)
    regular = {
        "billing_account_id": _strings([account], np.zeros(n, dtype=np.int64)),
        "service": service_cat.take(pa.array(sku)),
        "sku": sku_cat.take(pa.array(sku)),
        "usage_start_time": _ts(t0),
        "usage_end_time": _ts(t1),
        "project": project_cat.take(pa.array(proj)),
        "labels": labels_cat.take(pa.array(label_idx)),
        "system_labels": system_cat.take(pa.array((kind == "vm").astype(np.int64))),
        "location": location_cat.take(pa.array(sku)),
        "tags": tags_cat.take(pa.array(tag_idx)),
        "transaction_type": _strings(["GOOGLE"], np.zeros(n, dtype=np.int64)),
        "seller_name": pa.nulls(n, pa.string()),
        "export_time": _ts(exported),
        "cost": pa.array(cost),
        "currency": _strings(["USD"], np.zeros(n, dtype=np.int64)),
        "currency_conversion_rate": pa.array(np.ones(n)),
        "usage": pa.StructArray.from_arrays(
            [pa.array(amount), _strings([s[4] for s in skus], sku), pa.array(in_pricing),
             _strings([s[5] for s in skus], sku)], fields=list(_t("usage"))),
        "credits": credits,
        "invoice": pa.StructArray.from_arrays(
            [_strings([ym], np.zeros(n, dtype=np.int64)), pa.nulls(n, pa.string())],
            fields=list(_t("invoice"))),
        "cost_type": _strings(["regular"], np.zeros(n, dtype=np.int64)),
        "adjustment_info": pa.nulls(n, _t("adjustment_info")),
        "cost_at_list": pa.array(cost_at_list),
    }
    table = pa.table(regular, schema=TYPES)

    # ---- tax, adjustment and rounding rows (row dicts, as gcp_fixtures builds them) -----
    net = cost + np.bincount(owner, weights=camount, minlength=n)
    per_project = np.bincount(proj, weights=net, minlength=projects)
    tail = []
    base = {"billing_account_id": account, "usage_start_time": start, "usage_end_time": end,
            "labels": [], "system_labels": [], "location": gf._location("global"), "tags": [],
            "transaction_type": "GOOGLE", "seller_name": None, "currency": "USD",
            "currency_conversion_rate": 1.0,
            "usage": {"amount": None, "unit": None, "amount_in_pricing_units": None,
                      "pricing_unit": None},
            "credits": [], "invoice": {"month": ym, "publisher_type": None},
            "adjustment_info": None, "cost_at_list": None}
    for i, p in enumerate(projs):
        tail.append({**base, "service": {"id": None, "description": "Tax"},
                     "sku": {"id": None, "description": "Sales tax: US"}, "project": p,
                     "export_time": end + timedelta(days=2, hours=3 + i),
                     "cost": round(float(per_project[i]) * 0.0825, 6), "cost_type": "tax"})
    tail.append({**base, "service": service_cat[0].as_py(), "sku": sku_cat[0].as_py(),
                 "project": projs[0], "export_time": end + timedelta(days=3, hours=9),
                 "cost": -1.2345678901234567, "cost_type": "adjustment",
                 "adjustment_info": {"id": "adj-0001", "description": "Usage correction for N2 cores",
                                     "mode": "PARTIAL_CORRECTION", "type": "USAGE_CORRECTION"}})
    tail.append({**base, "service": {"id": None, "description": "Invoice"},
                 "sku": {"id": None, "description": "Rounding error"}, "project": projs[-1],
                 "export_time": end - timedelta(hours=2), "cost": -0.000003,
                 "cost_type": "rounding_error"})
    return pa.concat_tables([table, pa.Table.from_pylist(tail, schema=TYPES)])


def _exact_sum(arr: pa.Array) -> Decimal | None:
    "Exact sum of a double column, each value as Decimal(repr(x)); None when all are null."
    values = arr.drop_null().to_numpy(zero_copy_only=False)
    if len(values) == 0:
        return None
    uniq, counts = np.unique(values, return_counts=True)
    with localcontext(Context(prec=100)):
        return sum((Decimal(repr(float(u))) * int(k) for u, k in zip(uniq, counts)), Decimal(0))


def totals(table: pa.Table) -> dict:
    "gcp_fixtures.expected(...) of a table, vectorised (same keys and values)."
    cost = table.column("cost").combine_chunks()
    ctypes = table.column("cost_type").combine_chunks()
    credits = pc.list_flatten(table.column("credits").combine_chunks())
    usage = table.column("usage").combine_chunks()
    months = pc.struct_field(table.column("invoice").combine_chunks(), [0])
    with localcontext(Context(prec=100)):
        c = _exact_sum(cost) or Decimal(0)
        cr = _exact_sum(pc.struct_field(credits, [1])) or Decimal(0)
        by = {}
        for t in sorted(set(ctypes.to_pylist())):
            mask = pc.equal(ctypes, t)
            by[t] = {"rows": int(pc.sum(mask).as_py()), "cost": _exact_sum(cost.filter(mask)) or Decimal(0)}
        _, ends = zip(*(gf.month_window(m) for m in set(months.to_pylist())))
        late = pc.greater_equal(table.column("export_time"), pa.scalar(max(ends), pa.timestamp("us", tz="UTC")))
        return {"rows": table.num_rows, "cost": c,
                "cost_at_list": _exact_sum(table.column("cost_at_list").combine_chunks()),
                "credits": cr, "usage_amount": _exact_sum(pc.struct_field(usage, [0])),
                "net": c + cr, "cost_types": by, "late_rows": int(pc.sum(late).as_py())}


def _jsonable(x):
    if isinstance(x, Decimal):
        return str(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def write_month(path, rows: int = 1_000_000, period: str = "2024-03", seed: int = 0,
                projects: int = 8) -> dict:
    """Write the month to the Parquet file ``path`` and its totals to ``<path>.expected.json``
    (``expected.json`` beside it when the file is called ``month.parquet``). Returns the totals
    (Decimals) with the timings and the paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    table = build_table(rows, period, seed, projects)
    t_build = time.perf_counter() - t
    pq.write_table(table, path, compression="snappy", row_group_size=128 * 1024)
    t_write = time.perf_counter() - t - t_build
    exp = totals(pq.read_table(path))  # the totals of what was written, read back
    t_total = time.perf_counter() - t
    out = path.with_name("expected.json") if path.name == "month.parquet" \
        else path.with_name(path.name + ".expected.json")
    info = {"period": gf.invoice_month(period), "seed": seed, "projects": projects,
            "file": path.name, "bytes": path.stat().st_size, **exp}
    out.write_text(json.dumps(_jsonable(info), indent=2) + "\n")
    return {**info, "expected_json": str(out), "secs": {"build": round(t_build, 2),
                                                         "write": round(t_write, 2),
                                                         "total": round(t_total, 2)}}


def load_into_emulator(path, expected: dict) -> dict:
    "Start the emulator, load the file into a new export table, time it, check the totals."
    import servers

    servers.apply_offline_env()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    server = servers.start_bigquery_server()
    try:
        client = bigquery.Client(project=server.project, credentials=AnonymousCredentials(),
                                 client_options=ClientOptions(api_endpoint=server.url))
        client.create_dataset(f"{server.project}.bench_gcp")
        table_id = f"{server.project}.bench_gcp.{gf.export_table_name('000000-000000-000000')}"
        gf.create_export_table(client, table_id)
        parquet_options = bigquery.ParquetOptions()
        parquet_options.enable_list_inference = True
        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET,
                                        schema=gf.SCHEMA_STANDARD, parquet_options=parquet_options,
                                        write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
        t = time.perf_counter()
        with open(path, "rb") as fh:
            job = client.load_table_from_file(fh, table_id, job_config=config, num_retries=0, timeout=600)
        job.result(timeout=600)
        load_secs = time.perf_counter() - t
        t = time.perf_counter()
        rows = list(client.query(f"SELECT invoice.month AS month, COUNT(*) AS n, SUM(cost) AS cost, "
                                 f"SUM(CAST(cost AS BIGNUMERIC)) AS big FROM `{table_id}` GROUP BY 1",
                                 job_retry=None).result(timeout=600))
        query_secs = time.perf_counter() - t
        (r,) = rows
        exact = Decimal(str(expected["cost"]))
        res = {"load_secs": round(load_secs, 2), "query_secs": round(query_secs, 2),
               "output_rows": job.output_rows, "month": r["month"], "rows": r["n"],
               "sum_cost_float": r["cost"], "sum_cost_bignumeric": str(r["big"]),
               "exact_cost": str(exact)}
        assert r["month"] == expected["period"] and r["n"] == expected["rows"], res
        assert abs(Decimal(repr(r["cost"])) - exact) < Decimal("1e-6"), res
        client.close()
        return res
    finally:
        server.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--period", default="2024-03")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--projects", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for month.parquet and expected.json (default bench/.data/gcp-<period>-<rows>)")
    ap.add_argument("--load", action="store_true",
                    help="also time a load of the file into the local-bigquery emulator")
    a = ap.parse_args(argv)
    out = a.out or HERE / ".data" / f"gcp-{gf.invoice_month(a.period)}-{a.rows}"
    res = write_month(out / "month.parquet", a.rows, a.period, a.seed, a.projects)
    print(json.dumps(_jsonable({k: v for k, v in res.items() if k != "cost_types"}), indent=2))
    if a.load:
        print(json.dumps(load_into_emulator(out / "month.parquet", res), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

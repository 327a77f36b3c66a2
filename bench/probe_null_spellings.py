"""What the null-spelling handling of commit d1fe017 costs in the load's SQL, with the CSV parsing taken out.

    .venv/bin/python bench/probe_null_spellings.py [--repeats 5]      # ~2 min on the 1M-row month

The staged month (bench_load.py stages it) is read once into an in-memory DuckDB table of VARCHAR columns, as
the load's read_csv gives them. Then, alternated `--repeats` times, the same aggregate over the table's 25
typed columns (the 21 DECIMAL(38,18) and 4 TIMESTAMP WITH TIME ZONE columns of the month) with each cast:

  nullif      CAST(NULLIF(x, '') AS T)                                         (the cast before d1fe017)
  case-in     CAST(CASE WHEN x IN ('', 'None', 'null', 'NULL', 'NaN', 'nan') THEN NULL ELSE x END AS T)
              (`finops_nb.schema.cast_expr` now; in the INSERT and, at DECIMAL(38,24), in the second read)
  counters    sum(CAST(x IN ('None', 'null', 'NULL', 'NaN', 'nan') AS INTEGER)) per typed column
              (`finops_nb.schema.null_spelling`: what `source_totals` adds to the second read now)

Each aggregate sums the cast values (`sum` for decimals, `max` for timestamps), so DuckDB must cast every value.
Prints seconds per variant (median, range) and the difference per 1M rows.
Results: bench/.data/results/nulls-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import DATA, load_expected, machine, save, staged_folder  # noqa: E402

NULLS = ("", "None", "null", "NULL", "NaN", "nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "month-1m"))
    ap.add_argument("--work", default=str(DATA / "work"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    a = ap.parse_args(argv)
    import duckdb
    from finops_nb.aws.schema import CUR
    from finops_nb.schema import CHECK_DECIMAL, DECIMAL, TIMESTAMP, VARCHAR, cast_expr, lit, null_spelling, q

    data = Path(a.data).resolve()
    exp = load_expected(data)
    folder = staged_folder(Path(a.work) / data.name / "staging", data, exp["period"], exp["assembly_id"])
    files = [folder / Path(k).name for k in exp["data_keys"]]
    if not all(f.is_file() for f in files):
        raise SystemExit(f"{folder}: run bench_load.py first (it stages the month)")
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    t = time.perf_counter()
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv([" + ", ".join(lit(f) for f in files) + "], header = true, "
                "all_varchar = true)")
    print(f"machine: {machine()}\nread {len(files)} files into an in-memory VARCHAR table in {time.perf_counter() - t:.1f} s")
    cols = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
    typed = [(c, CUR.column_type(CUR.normalise(c), "")) for c in cols]
    typed = [(c, ty) for c, ty in typed if ty != VARCHAR]
    print(f"{len(typed)} typed columns: {sum(ty == DECIMAL for _, ty in typed)} {DECIMAL}, "
          f"{sum(ty == TIMESTAMP for _, ty in typed)} {TIMESTAMP}")
    agg = lambda ty, e: f"sum({e})" if ty.startswith("DECIMAL") else f"max({e})"
    null_list = ", ".join(lit(n) for n in NULLS)
    variants = {
        "nullif": [agg(ty, f"CAST(NULLIF({q(c)}, '') AS {ty})") for c, ty in typed],
        "case-in": [agg(ty, cast_expr(q(c), "VARCHAR", ty)) for c, ty in typed],
        "nullif, check scale": [agg(ty, f"CAST(NULLIF({q(c)}, '') AS {CHECK_DECIMAL if ty == DECIMAL else ty})") for c, ty in typed],
        "case-in, check scale": [agg(ty, cast_expr(q(c), "VARCHAR", CHECK_DECIMAL if ty == DECIMAL else ty)) for c, ty in typed],
        "counters": [f"sum({null_spelling(q(c), 'VARCHAR')})" for c, _ in typed],
    }
    assert f"IN ({null_list})" in variants["case-in"][0], variants["case-in"][0]
    secs = {k: [] for k in variants}
    for k, exprs in variants.items():  # warm-up, and the results must agree
        con.execute(f"SELECT {', '.join(exprs)} FROM t").fetchall()
    for _ in range(a.repeats):
        for k, exprs in variants.items():
            t = time.perf_counter()
            con.execute(f"SELECT {', '.join(exprs)} FROM t").fetchall()
            secs[k].append(time.perf_counter() - t)
    n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    med = {k: statistics.median(v) for k, v in secs.items()}
    for k, v in secs.items():
        print(f"  {k:<22s} {med[k]:.3f} s ({min(v):.3f}-{max(v):.3f})")
    d1 = med["case-in"] - med["nullif"]
    d2 = med["case-in, check scale"] - med["nullif, check scale"]
    print(f"over {n:,} rows x {len(typed)} columns: CASE ... IN instead of NULLIF costs {d1:+.3f} s per cast pass "
          f"(check scale {d2:+.3f} s); the counters cost {med['counters']:.3f} s of work (evaluated alone)")
    print(f"results saved to {save('nulls', {'machine': machine(), 'rows': n, 'typed_columns': len(typed), 'seconds': secs, 'median': med})}")


if __name__ == "__main__":
    main()

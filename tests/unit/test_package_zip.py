"""A package is reproducible: zipping the same files again, at another time and with other file dates, gives the same
bytes (and so the same sha256 in the index). The whole packaging is in tests/integration/test_package.py."""

from __future__ import annotations

import datetime
import os
import zipfile

from dsd_tools.zoo.package import _zip


def _bundle(root, when: float):
    folder = root / "NAME"
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "train.json").write_text('{"a": 1}\n')
    (folder / "models").mkdir()
    (folder / "models" / "model.pt").write_bytes(bytes(range(256)) * 40)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"compiled")  # never shipped
    for p in folder.rglob("*"):
        os.utime(p, (when, when))
    return folder


def test_zipping_the_same_files_again_gives_the_same_bytes(tmp_path):
    a = _bundle(tmp_path / "a", when=1_600_000_000)
    b = _bundle(tmp_path / "b", when=1_700_000_000)  # the same files, three years later
    _zip(a, tmp_path / "a.zip")
    _zip(b, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == ["NAME/configs/train.json", "NAME/models/model.pt"]
        assert z.read("NAME/models/model.pt") == bytes(range(256)) * 40
    # one fixed date for every entry: neither the files' dates nor the time of packaging
    (date,) = {i.date_time for i in infos}
    now = datetime.datetime.now()
    assert abs(datetime.datetime(*date) - now) > datetime.timedelta(days=2)
    assert all(i.compress_type == zipfile.ZIP_DEFLATED and i.external_attr >> 16 == 0o644 for i in infos)

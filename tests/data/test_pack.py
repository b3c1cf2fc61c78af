"""`sslbench pack` / `unpack`: bit-exact round trips, parts, subsets and the errors of a damaged pack."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchmarks.cli import main
from benchmarks.data.cases import load_case
from benchmarks.data.layouts import get_layout, write_id_list
from benchmarks.data.pack import decode_array, encode_array, pack_dataset, read_manifest, unpack_dataset
from benchmarks.errors import ConfigError, DataError

SHAPE = (12, 10, 8)


def _dataset(root: Path) -> Path:
    """A ``prepared`` root: case a (<= 256 values, -0.0 and 0.0, gzip, attributes, a group), b (> 256
    values, bool label), c (binary uint8 label), lists and a small extra file."""
    g = np.random.default_rng(0)
    label = (g.random(SHAPE) > 0.7).astype(np.uint8)
    few = g.choice(np.array([-0.0, 0.0, 0.5, np.nan, 3e38], dtype=np.float32), SHAPE)
    (root / "cases").mkdir(parents=True)
    with h5py.File(root / "cases" / "a.h5", "w") as handle:
        handle.attrs["spacing"] = np.array([0.6, 0.7, 2.5])
        handle.attrs["note"] = "first case"
        handle.create_dataset("image", data=few, chunks=(6, 5, 4), compression="gzip", compression_opts=4,
                              shuffle=True)
        handle.create_dataset("label", data=label, compression="lzf")
        handle.create_dataset("extra/mask", data=label.astype(np.int16)).attrs["source"] = np.int32(7)
        handle["extra"].attrs["kind"] = np.bytes_(b"raw")
    with h5py.File(root / "cases" / "b.h5", "w") as handle:
        handle.create_dataset("image", data=g.standard_normal(SHAPE).astype(np.float32))
        handle.create_dataset("label", data=label.astype(bool))
    with h5py.File(root / "cases" / "c.h5", "w") as handle:
        handle.create_dataset("image", data=np.round(g.random(SHAPE) * 1000).astype(np.float64))
        handle.create_dataset("label", data=1 - label)
    write_id_list(root / "train.list", ["a", "b"])
    write_id_list(root / "test.list", ["c"])
    (root / "notes.txt").write_text("kept as it is\n")
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return _dataset(tmp_path / "data")


def _contents(path: Path) -> dict:
    """Everything a loader can read from an HDF5 file: each object's attributes, each dataset's bytes."""
    seen = {}
    with h5py.File(path, "r") as handle:
        seen["/"] = {k: np.asarray(v).tobytes() for k, v in handle.attrs.items()}
        def visit(name: str, node) -> None:
            entry = {k: (np.asarray(v).dtype.str, np.asarray(v).tobytes()) for k, v in node.attrs.items()}
            if isinstance(node, h5py.Dataset):
                entry["array"] = (node.dtype.str, node.shape, node[()].tobytes())
                entry["storage"] = (node.chunks, node.compression, node.compression_opts, node.shuffle)
            seen[name] = entry
        handle.visititems(visit)
    return seen


def _assert_same_root(original: Path, rebuilt: Path, names: list[str]) -> None:
    for name in names:
        if name.endswith(".h5"):
            assert _contents(rebuilt / name) == _contents(original / name), name
        else:
            assert (rebuilt / name).read_bytes() == (original / name).read_bytes(), name


def test_encodings_are_bit_exact():
    g = np.random.default_rng(1)
    arrays = {
        "index8": np.array([-0.0, 0.0, np.nan, -np.inf, 1.5], dtype=np.float32)[g.integers(0, 5, (7, 5, 3))],
        "raw": g.standard_normal((8, 8, 5)).astype(np.float32),
        "index1": g.random((7, 5, 3)) > 0.5,
    }
    for encoding, array in arrays.items():
        record, payload = encode_array(array)
        assert record["encoding"] == encoding
        back = decode_array(record, payload)
        assert back.dtype == array.dtype and back.shape == array.shape and back.tobytes() == array.tobytes()
    record, payload = encode_array(np.zeros((0, 4), dtype=np.uint8))
    assert decode_array(record, payload).shape == (0, 4)


def test_round_trip_in_parts(dataset: Path, tmp_path: Path):
    summary = pack_dataset(dataset, tmp_path / "pack", part_size=1500)
    assert summary.layout == "prepared" and summary.cases == 3 and summary.files == 3
    assert len(summary.part_sizes) > 2 and max(summary.part_sizes) <= 1500
    assert [p.stat().st_size for p in sorted((tmp_path / "pack").glob("part-*.bin"))] == list(summary.part_sizes)
    manifest = read_manifest(tmp_path / "pack")
    encodings = {(c["id"], d["name"]): d["encoding"] for c in manifest["cases"] for d in c["datasets"]}
    assert encodings == {("a", "image"): "index8", ("a", "label"): "index1", ("a", "extra/mask"): "index1",
                         ("b", "image"): "raw", ("b", "label"): "index1",
                         ("c", "image"): "raw", ("c", "label"): "index1"}

    unpacked = unpack_dataset(tmp_path / "pack", tmp_path / "out")
    assert (unpacked.cases, unpacked.files) == (3, 3)
    _assert_same_root(dataset, tmp_path / "out",
                      ["cases/a.h5", "cases/b.h5", "cases/c.h5", "train.list", "test.list", "notes.txt"])
    case = load_case(tmp_path / "out" / "cases" / "b.h5", "b", get_layout("prepared").spacing)
    assert case.label.dtype == np.uint8 and case.spacing == (1.0, 1.0, 1.0)


def test_subset_keeps_only_its_cases_and_repacking_replaces(dataset: Path, tmp_path: Path):
    pack_dataset(dataset, tmp_path / "pack", part_size=200)
    summary = pack_dataset(dataset, tmp_path / "pack", cases=["c", "a"])
    assert summary.cases == 2 and len(summary.part_sizes) == 1
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == ["manifest.json", "part-0000.bin"]
    unpack_dataset(tmp_path / "pack", tmp_path / "out", jobs=2)
    assert (tmp_path / "out" / "train.list").read_text() == "a\n"
    assert (tmp_path / "out" / "test.list").read_text() == "c\n"
    assert not (tmp_path / "out" / "cases" / "b.h5").exists()
    _assert_same_root(dataset, tmp_path / "out", ["cases/a.h5", "cases/c.h5", "notes.txt"])
    with pytest.raises(DataError, match="'zz' are in none of its lists"):
        pack_dataset(dataset, tmp_path / "other", cases=["a", "zz"])


def test_bad_destinations_and_layouts(dataset: Path, tmp_path: Path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="busy: exists and is not a pack"):
        pack_dataset(dataset, tmp_path / "busy")
    with pytest.raises(ConfigError, match="outside the dataset root"):
        pack_dataset(dataset, dataset / "pack")
    with pytest.raises(ConfigError, match="cannot tell its dataset layout"):
        pack_dataset(tmp_path / "busy", tmp_path / "pack")
    assert not (tmp_path / "pack").exists() and (tmp_path / "busy" / "keep.txt").exists()


@pytest.fixture
def packed(dataset: Path, tmp_path: Path) -> Path:
    pack_dataset(dataset, tmp_path / "pack", part_size=1500)
    return tmp_path / "pack"


def _edit_manifest(pack: Path, edit) -> None:
    manifest = json.loads((pack / "manifest.json").read_text())
    edit(manifest)
    (pack / "manifest.json").write_text(json.dumps(manifest))


def test_damaged_packs_are_named(packed: Path, tmp_path: Path):
    out = tmp_path / "out"
    part = packed / "part-0001.bin"
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"part-0001\.bin: bad checksum"):
        unpack_dataset(packed, out)
    part.write_bytes(bytes(data[:-1]))
    with pytest.raises(DataError, match=r"part-0001\.bin: 1499 bytes, the manifest says 1500"):
        unpack_dataset(packed, out)
    part.unlink()
    with pytest.raises(DataError, match=r"missing part\(s\) part-0001\.bin \(1 of"):
        unpack_dataset(packed, out)
    assert not out.exists()


def test_wrong_arrays_and_versions_are_named(packed: Path, tmp_path: Path):
    def wrong_sha(manifest: dict) -> None:
        manifest["cases"][1]["datasets"][0]["sha256"] = "0" * 64

    _edit_manifest(packed, wrong_sha)
    with pytest.raises(DataError, match=r"case 'b' \(cases/b\.h5\) dataset 'image': checksum mismatch"):
        unpack_dataset(packed, tmp_path / "out")
    assert not (tmp_path / "out" / "cases" / "b.h5").exists() and not (tmp_path / "out" / "train.list").exists()

    manifest = read_manifest(packed)
    offset = next(d for d in manifest["cases"][0]["datasets"] if d["name"] == "image")["blob"][0] + 40
    part = packed / manifest["parts"][offset // 1500]["name"]
    data = bytearray(part.read_bytes())
    data[offset % 1500] ^= 0xFF
    part.write_bytes(bytes(data))

    def matching_part(manifest: dict) -> None:
        manifest["parts"][offset // 1500]["sha256"] = hashlib.sha256(data).hexdigest()

    _edit_manifest(packed, matching_part)
    with pytest.raises(DataError, match=r"case 'a' \(cases/a\.h5\) dataset 'image': corrupt compressed data"):
        unpack_dataset(packed, tmp_path / "out")
    _edit_manifest(packed, lambda manifest: manifest.update(version=2))
    with pytest.raises(DataError, match=r"manifest\.json: unknown pack version 2"):
        unpack_dataset(packed, tmp_path / "out")
    (packed / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"manifest\.json: not found"):
        unpack_dataset(packed, tmp_path / "out")


def test_cli(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["pack", str(dataset), "--out", str(tmp_path / "pack"), "--part-size", "0.001", "--no-progress"]) == 0
    assert "prepared: 3 case(s), 3 file(s)" in capsys.readouterr().out
    assert main(["unpack", str(tmp_path / "pack"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "3 case(s), 3 file(s) verified" in capsys.readouterr().out
    (tmp_path / "pack" / "part-0000.bin").unlink()
    assert main(["unpack", str(tmp_path / "pack"), "--out", str(tmp_path / "out")]) == 2
    assert "sslbench unpack: error: " in capsys.readouterr().err


def test_real_la_round_trip(la: Path, tmp_path: Path):
    """Two real LA cases (a training and a test case) survive pack and unpack bit for bit."""
    layout = get_layout("la")
    train, test = layout.read_lists(la)
    ids = [train[0], test[0]]
    summary = pack_dataset(la, tmp_path / "pack", cases=ids, part_size=2**20)
    assert summary.layout == "la" and summary.cases == 2
    encodings = {d["encoding"] for c in read_manifest(tmp_path / "pack")["cases"] for d in c["datasets"]}
    assert encodings == {"index8", "index1"}
    unpack_dataset(tmp_path / "pack", tmp_path / "LA")
    names = [layout.case_pattern.format(id=case_id) for case_id in ids]
    _assert_same_root(la, tmp_path / "LA", names)
    assert layout.read_lists(tmp_path / "LA") == ([train[0]], [test[0]])

"""Decoder feature maps over training (Fig. 6, ``tables.md`` section 7).

The trainer keeps the weights at the iterations listed in ``snapshots`` (``<run>/snapshots/<stage>_<it>.pt``).
``sslbench features RUN_DIR --out FILE.npz`` restores each snapshot, runs :meth:`Method.feature_maps` on one
test case (the evaluation window centred on the volume, zero-padded where the volume is smaller) and keeps
the channel mean of every map on the central axial slice of that window. The npz holds:

- ``names`` (M,): the maps' names, e.g. ``A (Dice)``, ``B (CE)``;
- ``maps`` (M, S, X, Y) float32: channel-mean slice of map m at snapshot s;
- ``stages`` (S,), ``iterations`` (S,): where each snapshot was taken (iterations counted from 1 in its stage);
- ``image``, ``label`` (X, Y): the slice itself; ``case`` and ``run_dir``;
- ``failed``: why the training failed (empty when it completed); the snapshots kept before the failure are
  used, and when there are none the file holds only ``failed``, ``case`` and ``run_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..io import write_atomic
from ..rundir import SNAPSHOTS
from ..runtime import resolve_device, restore_method, run_config, training_status
from ..train.data import load_split, load_test_cases


def centre_window(volume: np.ndarray, window: tuple[int, int, int]) -> np.ndarray:
    """The ``window``-sized block centred on ``volume`` (X, Y, Z); axes shorter than the window are
    zero-padded, ``floor((w - s) / 2)`` before and the rest after (as in the sliding window)."""
    out = np.zeros(window, dtype=np.float32)
    src, dst = [], []
    for size, w in zip(volume.shape, window):
        if size >= w:
            start = (size - w) // 2
            src.append(slice(start, start + w))
            dst.append(slice(0, w))
        else:
            start = (w - size) // 2
            src.append(slice(0, size))
            dst.append(slice(start, start + size))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def snapshot_paths(run_dir: Path, required: bool = True) -> list[Path]:
    """The run's snapshots in training order (stage by stage, iteration ascending); DataError when there are
    none and they are ``required``."""
    folder = run_dir / SNAPSHOTS
    paths = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    if not paths and required:
        raise DataError(f"{folder}: no weight snapshots; train the run with --set 'snapshots=[...]' (outer "
                        "iterations at which to keep the weights); a run that finished without them must be "
                        "retrained from scratch (remove its directory)")
    record = run_dir / "provenance.json"
    order = [s["name"] for s in json.loads(record.read_text()).get("stages", [])] if record.is_file() else []
    return sorted(paths, key=lambda p: (order.index(_stage(p)) if _stage(p) in order else len(order), p.name))


def _stage(path: Path) -> str:
    return path.stem.rsplit("_", 1)[0]


@torch.no_grad()
def snapshot_features(run_dir: str | Path, out: str | Path, case: str | None = None) -> Path:
    """Write the npz described in the module docstring; ``case`` defaults to the first test case."""
    run_dir = Path(run_dir)
    config, options = run_config(run_dir)
    status = training_status(run_dir)
    failed = str(status.get("message", "")) if status.get("status") == "failed" else ""
    paths = snapshot_paths(run_dir, required=not failed)
    split = load_split(config)
    case_id = case or split.test[0]
    if case_id not in split.test:
        raise DataError(f"case {case_id!r} is not in the test list of {run_dir}")
    test = next(c for c in load_test_cases(config, split, False) if c.id == case_id)
    window = tuple(config.eval.window)
    image, label = centre_window(test.image, window), centre_window(test.label, window)
    device = resolve_device(config.device)
    x = torch.from_numpy(image)[None, None].to(device)
    z = window[2] // 2
    names: list[str] = []
    maps: list[list[np.ndarray]] = []
    if not paths:  # the training failed before its first snapshot
        arrays = {"failed": np.array(failed), "case": np.array(case_id), "run_dir": np.array(str(run_dir))}
        write_atomic(out, lambda handle: np.savez_compressed(handle, **arrays))
        return Path(out)
    for path in paths:
        method = restore_method(config, options, path, device)
        features = method.feature_maps(x)
        if not features:
            raise ConfigError(f"method {config.method!r} exposes no feature maps (Method.feature_maps)")
        names = names or list(features)
        if list(features) != names:
            raise DataError(f"{path}: feature maps {list(features)} differ from the first snapshot's {names}")
        maps.append([features[n][0].float().mean(0)[:, :, z].cpu().numpy() for n in names])
    arrays = {
        "names": np.array(names), "maps": np.stack([np.stack(m) for m in zip(*maps)]).astype(np.float32),
        "stages": np.array([_stage(p) for p in paths]),
        "iterations": np.array([int(p.stem.rsplit("_", 1)[1]) for p in paths]),
        "image": image[:, :, z], "label": label[:, :, z].astype(np.uint8), "case": np.array(case_id),
        "run_dir": np.array(str(run_dir)), "failed": np.array(failed),
    }
    write_atomic(out, lambda handle: np.savez_compressed(handle, **arrays))
    return Path(out)

"""One recipe per dataset: where its raw files are, its split lists and its raw -> h5 steps (protocols.md §2-5).

A recipe turns one raw case into a :class:`Prepared` case: ``image`` float32 (X, Y, Z), ``label`` uint8
(X, Y, Z) in {0, 1}, the physical voxel size and the crop box, plus the facts the manifest records. Every
option is a field of the recipe's options dataclass (``sslbench prepare DATASET --set key=value``); fields
marked ``split`` only change the lists, the others change the cases. All crops use the ground-truth label
(oracle localisation, as in the literature).
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from benchmarks.errors import ConfigError, DataError
from benchmarks.prepare import steps
from benchmarks.prepare.readers import Volume, check_same_geometry, read_volume

LISTS = Path(__file__).resolve().parent / "lists"
#: md5 of every packaged list file (lists/README.md says where each comes from).
LIST_MD5 = {
    "la_train.list": "ded9b3bf69cd44ddeda212e30a9f5b00",
    "la_test.list": "c8b450d0ab549f4c1e8bcecec45f0209",
    "pancreas_mcnet_train.list": "9c0d0d723f9290e3fb2ce8cc89689f55",
    "pancreas_mcnet_test.list": "1a30621facd70bb1af1ac173b0e23b07",
    "pancreas_coranet_train_lab.txt": "0fa8d0b86e9edd587fae63a16563253d",
    "pancreas_coranet_train_unlab.txt": "b538f1f475bfa7330240376c9cd4f6d4",
    "pancreas_coranet_test.txt": "676f5f0f31ab42674d45fe01050ce19a",
    "lung_train.list": "5c518420c083065fc84dc0cabc8314dd",
    "lung_test.list": "b4f582939ddf292b7fb8c91b82be20d5",
}
SPLIT = {"split": True}


def packaged_list(name: str) -> list[str]:
    """IDs of a packaged list file after checking its md5 against :data:`LIST_MD5`."""
    data = (LISTS / name).read_bytes()
    if hashlib.md5(data).hexdigest() != LIST_MD5[name]:
        raise DataError(f"{LISTS / name}: md5 {hashlib.md5(data).hexdigest()} != {LIST_MD5[name]} (corrupt install)")
    return data.decode().split()


@dataclass(frozen=True)
class RawCase:
    """One raw case: output ID, image (a file, or a DICOM folder) and label file."""

    id: str
    image: Path
    label: Path


@dataclass
class Prepared:
    """A processed case: ``image`` float32 and ``label`` uint8 {0, 1}, both (X, Y, Z); ``spacing`` mm (X, Y, Z);
    ``box`` the crop in the resampled volume's voxels; ``info`` extra manifest facts; ``attrs`` extra h5 attributes."""

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    box: steps.Box
    info: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def check_range(name: str, lo: float, hi: float) -> None:
    if not lo < hi:
        raise ConfigError(f"option {name!r}: lower bound {lo} must be below upper bound {hi}")


def require_nonnegative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ConfigError(f"option {name!r} must be >= 0, got {value}")


class Recipe(ABC):
    """A dataset's raw layout, lists and steps. ``layout`` names the on-disk layout written (data/layouts.py)."""

    name: ClassVar[str]
    layout: ClassVar[str]
    Options: ClassVar[type]

    @abstractmethod
    def discover(self, raw: Path, options: Any) -> dict[str, RawCase]:
        """Every case found under ``raw``, keyed by output ID."""

    @abstractmethod
    def lists(self, found: dict[str, RawCase], options: Any) -> dict[str, list[str]]:
        """List file name (relative to the output root) -> IDs; DataError if a listed case is not in ``found``."""

    @abstractmethod
    def process(self, case: RawCase, options: Any) -> Prepared:
        """The prepared arrays of one case."""

    def split_name(self, options: Any) -> str:
        """The protocol name of the split written (tables must carry it)."""
        return self.name

    def missing_hint(self, missing: list[str], options: Any) -> str:
        """Advice appended to the error for listed cases absent from the raw data."""
        return ""

    def dataset_file(self, name: str, raw: Path, options: Any, lists: dict[str, list[str]]) -> dict[str, Any] | None:
        """The dataset YAML (:mod:`benchmarks.config.dataset`) of data without a built-in dataset file, written
        to ``<out>/dataset.yaml``; ``None`` for the built-in datasets."""
        return None


def require_listed(recipe: Recipe, found: dict[str, RawCase], lists: dict[str, list[str]], raw: Path,
                   options: Any) -> None:
    """DataError naming the listed IDs with no raw case (and the recipe's advice)."""
    missing = [case_id for ids in lists.values() for case_id in ids if case_id not in found]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise DataError(f"{raw}: {len(missing)} listed case(s) not found in the raw data: {shown}"
                        f"{recipe.missing_hint(missing, options)}")


def check_label_values(label: Volume, allowed: set[int]) -> None:
    """DataError naming the file if ``label`` holds values outside ``allowed`` or no non-zero voxel."""
    values = np.unique(label.array)
    bad = [v for v in values.tolist() if v not in allowed]
    if bad:
        shown = ", ".join(repr(v) for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise DataError(f"{label.source}: unexpected label values {shown} (expected {sorted(allowed)})")
    if not np.any(values != 0):
        raise DataError(f"{label.source}: label is empty (no foreground voxel)")


def volume_info(volume: Volume) -> dict[str, Any]:
    """Source geometry and intensity statistics for the manifest."""
    return {"shape": list(volume.shape), "spacing": list(volume.spacing), "origin": list(volume.origin),
            "direction": volume.direction.ravel().tolist(), "intensity": steps.stats(volume.array)}


def foreground(label: Volume, values: tuple[int, ...]) -> Volume:
    """Binary uint8 label: 1 where the raw value is in ``values``."""
    return label.with_array(np.isin(label.array, values).astype(np.uint8))


# ---------------------------------------------------------------------------------------------- left atrium


@dataclass(frozen=True)
class LAOptions:
    """``margins``: ``fixed`` (ours: ``margin`` voxels on both sides of X and Y) or ``random`` (official: each
    side an independent uniform integer in {10, ..., 19}, here drawn from a generator seeded by ``seed`` and
    the case ID, so reruns and resumed runs are identical). ``target``: small boxes are widened to about this
    many voxels. ``label_value``: the raw value of the atrium in ``laendo.nrrd``."""

    margins: Literal["fixed", "random"] = "fixed"
    margin: int = 15
    seed: int = 1337
    target: int = 112
    label_value: int = 255

    def __post_init__(self) -> None:
        require_nonnegative(margin=self.margin, target=self.target)


def case_rng(seed: int, case_id: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the case ID (not on processing order)."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


class LeftAtrium(Recipe):
    """2018 Atrial Segmentation Challenge -> the UA-MT h5 layout (protocols.md §2).

    Raw: ``<raw>/<ID>/lgemri.nrrd`` (image) and ``laendo.nrrd`` (label, atrium = 255), at any depth below
    ``raw``. Steps: label = (value == 255); z-score over the whole image; crop X and Y around the label
    (:func:`steps.xy_crop`, target 112), full Z; no resampling (native 0.625 mm). Regenerated files cannot be
    byte-identical to the released ones (the official margins are unseeded); prefer the released h5.
    """

    name, layout, Options = "la", "la", LAOptions

    def discover(self, raw: Path, options: LAOptions) -> dict[str, RawCase]:
        found = {}
        for image in sorted(raw.rglob("lgemri.nrrd")):
            found.setdefault(image.parent.name, RawCase(image.parent.name, image, image.parent / "laendo.nrrd"))
        return found

    def lists(self, found: dict[str, RawCase], options: LAOptions) -> dict[str, list[str]]:
        return {"train.list": packaged_list("la_train.list"), "test.list": packaged_list("la_test.list")}

    def process(self, case: RawCase, options: LAOptions) -> Prepared:
        image, label = read_volume(case.image), read_volume(case.label)
        check_same_geometry(image, label)
        check_label_values(label, {0, options.label_value})
        mask = foreground(label, (options.label_value,)).array
        normed = steps.zscore(image.array, str(case.image))
        if options.margins == "fixed":
            margins = [(options.margin, options.margin)] * 2
        else:
            drawn = case_rng(options.seed, case.id).integers(10, 20, size=4).tolist()
            margins = [(drawn[0], drawn[1]), (drawn[2], drawn[3])]
        box = steps.xy_crop(mask, options.target, margins, str(case.label))
        return Prepared(box.apply(normed), box.apply(mask), image.spacing, box,
                        {"source": volume_info(image), "margins": [list(m) for m in margins]})


# -------------------------------------------------------------------- NIfTI: MSD lung and any nnU-Net dataset


@dataclass(frozen=True)
class NiftiOptions:
    """``clip``: HU range or null; ``spacing``: target voxel size in mm (null keeps the native grid);
    ``margin``: voxels added around the 3-D label box; ``minimum``: the box is widened to at least this many
    voxels per axis where the volume allows; ``pad``: zero-pad axes shorter than ``minimum``;
    ``normalise``: ``zscore_crop`` (mean/std of the crop), ``zscore`` (of the whole resampled volume, before
    cropping), ``minmax`` (of the crop) or ``none``."""

    clip: tuple[float, float] | None = (-500.0, 275.0)
    spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    margin: int = 25
    minimum: int = 96
    pad: bool = False
    normalise: Literal["zscore_crop", "zscore", "minmax", "none"] = "zscore_crop"

    def __post_init__(self) -> None:
        require_nonnegative(margin=self.margin, minimum=self.minimum)
        if self.clip is not None:
            check_range("clip", *self.clip)
        if self.spacing is not None and min(self.spacing) <= 0:
            raise ConfigError(f"option 'spacing' must be positive (mm), got {self.spacing}")


def prepare_nifti(case: RawCase, options: NiftiOptions, values: tuple[int, ...], allowed: set[int]) -> Prepared:
    """Read, check, clip, resample (image linear, label nearest), crop (3-D box) and normalise one case."""
    image, label = read_volume(case.image), read_volume(case.label)
    check_same_geometry(image, label)
    check_label_values(label, allowed)
    label = foreground(label, values)
    if not label.array.any():
        raise DataError(f"{case.label}: no voxel has a foreground value {list(values)}")
    info = {"source": volume_info(image)}
    work = image.with_array(image.array.astype(np.float32))
    if options.clip is not None:
        work = work.with_array(steps.clip(work.array, *options.clip))
    if options.spacing is not None:
        work, label = steps.resample(work, options.spacing, "linear"), steps.resample(label, options.spacing, "nearest")
    array = steps.zscore(work.array, str(case.image)) if options.normalise == "zscore" else work.array
    box = steps.bbox_crop(label.array, options.margin, options.minimum, options.pad,
                          f"{case.label} (after resampling)")
    array = box.apply(array)
    if options.normalise == "zscore_crop":
        array = steps.zscore(array, str(case.image))
    elif options.normalise == "minmax":
        array = steps.minmax(array, str(case.image))
    attrs = {"source_spacing": np.asarray(image.spacing), "source_origin": np.asarray(image.origin),
             "source_direction": image.direction.ravel()}
    return Prepared(array.astype(np.float32), box.apply(label.array), work.spacing, box, info, attrs)


def _suffix_number(case_id: str) -> int:
    digits = re.findall(r"\d+", case_id)
    return int(digits[-1]) if digits else -1


class Lung(Recipe):
    """MSD Task06_Lung -> the ``prepared`` layout (protocols.md §5).

    Raw: ``<raw>/imagesTr/lung_XXX.nii.gz``, ``<raw>/labelsTr/lung_XXX.nii.gz`` (``dataset.json`` optional; MSD's
    ``._*`` files are ignored). Steps: clip [-500, 275] HU, resample to 1 mm (linear / nearest), crop the label
    box + 25 voxels on all axes widened to >= 96 without padding, z-score of the crop. The split is the
    committed ``lung_train.list`` / ``lung_test.list``; raw IDs that differ from them are an error.
    """

    name, layout, Options = "lung", "prepared", NiftiOptions

    def discover(self, raw: Path, options: NiftiOptions) -> dict[str, RawCase]:
        return discover_msd(raw, "")

    def lists(self, found: dict[str, RawCase], options: NiftiOptions) -> dict[str, list[str]]:
        lists = {"train.list": packaged_list("lung_train.list"), "test.list": packaged_list("lung_test.list")}
        listed = {case_id for ids in lists.values() for case_id in ids}
        extra = sorted(set(found) - listed, key=_suffix_number)
        if extra:
            raise DataError(f"{len(extra)} raw case(s) are not in the committed Task06 lists "
                            f"({', '.join(extra[:6])}): is this MSD Task06_Lung? Use `sslbench prepare nnunet` "
                            "for other data")
        return lists

    def process(self, case: RawCase, options: NiftiOptions) -> Prepared:
        return prepare_nifti(case, options, (1,), {0, 1})


def discover_msd(raw: Path, channel_suffix: str, ending: str = ".nii.gz") -> dict[str, RawCase]:
    """Cases of an MSD / nnU-Net raw folder: ``labelsTr/<case><ending>`` with ``imagesTr/<case><suffix><ending>``."""
    labels = raw / "labelsTr"
    if not labels.is_dir():
        raise DataError(f"{labels}: folder not found (expected an MSD / nnU-Net raw dataset under {raw})")
    found = {}
    for label in sorted(labels.iterdir()):
        if label.name.startswith(".") or not label.name.endswith(ending):
            continue
        case_id = label.name[: -len(ending)]
        found[case_id] = RawCase(case_id, raw / "imagesTr" / f"{case_id}{channel_suffix}{ending}", label)
    if not found:
        raise DataError(f"{labels}: no *{ending} label files")
    return found


@dataclass(frozen=True)
class NnunetOptions(NiftiOptions):
    """As :class:`NiftiOptions` (no clipping by default) plus ``foreground``: the label values that become
    1 (default: every non-zero value declared in ``dataset.json``); ``channel``: the image channel file
    (``_0000``) of nnU-Net v2 data; ``test_fraction`` and ``seed``: the split (IDs sorted by their numeric
    suffix, then ``RandomState(seed).permutation``; the last round(fraction * N) cases are the test set)."""

    clip: tuple[float, float] | None = None
    foreground: tuple[int, ...] | None = None
    channel: int = 0
    test_fraction: float = field(default=0.2, metadata=SPLIT)
    seed: int = field(default=1337, metadata=SPLIT)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"option 'test_fraction' must be in (0, 1), got {self.test_fraction}")


def read_dataset_json(raw: Path) -> dict[str, Any]:
    path = raw / "dataset.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (an nnU-Net raw dataset needs its dataset.json)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict):
        raise DataError(f"{path}: needs a 'labels' mapping")
    return meta


def declared_labels(meta: dict[str, Any], path: Path) -> set[int]:
    """Label values of ``dataset.json``: v1 ``{"0": "background"}`` or v2 ``{"background": 0}`` (no regions)."""
    values = set()
    for key, value in meta["labels"].items():
        raw_value = key if isinstance(value, str) else value
        try:
            values.add(int(raw_value))
        except (TypeError, ValueError):
            raise DataError(f"{path}: label entry {key!r}: {value!r} is not an integer label value") from None
    return values


class Nnunet(Recipe):
    """Any nnU-Net raw dataset (v2 ``imagesTr/<case>_0000.nii.gz`` or MSD/v1 ``imagesTr/<case>.nii.gz``,
    ``labelsTr/<case>.nii.gz``, ``dataset.json``) -> the ``prepared`` layout with a seeded train/test split."""

    name, layout, Options = "nnunet", "prepared", NnunetOptions

    def discover(self, raw: Path, options: NnunetOptions) -> dict[str, RawCase]:
        meta = read_dataset_json(raw)
        ending = meta.get("file_ending", ".nii.gz")
        v2 = "file_ending" in meta or "channel_names" in meta
        return discover_msd(raw, f"_{options.channel:04d}" if v2 else "", ending)

    def lists(self, found: dict[str, RawCase], options: NnunetOptions) -> dict[str, list[str]]:
        ids = sorted(found, key=lambda case_id: (_suffix_number(case_id), case_id))
        order = np.random.RandomState(options.seed).permutation(len(ids))
        n_test = round(options.test_fraction * len(ids))
        if not 0 < n_test < len(ids):
            raise ConfigError(f"test_fraction {options.test_fraction} of {len(ids)} cases leaves an empty split")
        permuted = [ids[i] for i in order]
        return {"train.list": permuted[: len(ids) - n_test], "test.list": permuted[len(ids) - n_test:]}

    def process(self, case: RawCase, options: NnunetOptions) -> Prepared:
        raw = case.label.parent.parent
        allowed = declared_labels(read_dataset_json(raw), raw / "dataset.json")
        values = options.foreground or tuple(sorted(v for v in allowed if v != 0))
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(f"option 'foreground': {unknown} not declared in {raw / 'dataset.json'}")
        return prepare_nifti(case, options, values, allowed)

    def split_name(self, options: NnunetOptions) -> str:
        return f"nnunet_seed{options.seed}_test{options.test_fraction:g}"

    def dataset_file(self, name: str, raw: Path, options: NnunetOptions, lists: dict[str, list[str]]) -> dict[str, Any]:
        """Family ``other``; the ``prepared`` layout; ``labels`` 20 %, a tenth of the training cases (at least
        one) held out for validation; patch and window ``minimum`` rounded down to a multiple of 16 (at least
        16) on every axis, stride half of it."""
        side = max(16, options.minimum // 16 * 16)
        layout = {"name": self.layout, "case_pattern": "cases/{id}.h5", "train_lists": ["train.list"],
                  "test_lists": ["test.list"], "spacing": list(options.spacing or (1.0, 1.0, 1.0)),
                  "manifest": "manifest.json"}
        return {
            "name": name, "family": "other", "layout": layout,
            "table": {"title": f"{name} dataset (nnU-Net raw data {raw.name})"},
            "prepare": f"run `sslbench prepare nnunet --raw {raw.resolve()} --out <data_root> --name {name}`",
            "run": {"labels": "20%", "validation": max(1, len(lists["train.list"]) // 10), "patch": [side] * 3,
                    "rotflip": False, "eval": {"window": [side] * 3, "strides": [side // 2] * 3}},
        }

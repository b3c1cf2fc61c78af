"""Data layer: layouts and list files, validated case loading, splits, transforms, the two-stream
batch schedule, training batches (``benchmarks.data.batches``, needs torch) and a synthetic dataset.

All randomness comes from :func:`benchmarks.data.seeding.rng` keyed by (seed, stream, ...), so a
resumed run, or a DataLoader worker, reproduces an uninterrupted run exactly.
"""

from benchmarks.data.cases import Case, CaseStore, load_case, write_case
from benchmarks.data.layouts import Layout, get_layout, read_id_list, write_id_list
from benchmarks.data.sampler import TwoStreamSchedule
from benchmarks.data.seeding import rng
from benchmarks.data.splits import Split, label_count, make_split
from benchmarks.data.transforms import center_crop, crop_padding, random_crop, random_rot_flip

__all__ = [
    "Case",
    "CaseStore",
    "Layout",
    "Split",
    "TwoStreamSchedule",
    "center_crop",
    "crop_padding",
    "get_layout",
    "label_count",
    "load_case",
    "make_split",
    "random_crop",
    "random_rot_flip",
    "read_id_list",
    "rng",
    "write_case",
    "write_id_list",
]

"""Against the real LA release (skipped when absent; see tests/conftest.py)."""

import hashlib

import numpy as np

from benchmarks.data.cases import CaseStore
from benchmarks.data.layouts import get_layout
from benchmarks.data.seeding import rng
from benchmarks.data.splits import make_split
from benchmarks.data.transforms import crop_padding, random_crop

LABELED_8 = [
    "06SR5RBREL16DQ6M8LWS",
    "0RZDK210BSMWAA6467LU",
    "1D7CUD1955YZPGK8XHJX",
    "1GU15S0GJ6PFNARO469W",
    "1MHBF3G6DCPWHSKG7XCP",
    "23X6SY44VT9KFHR7S7OC",
    "2XL5HSFSE93RMOJDRGR4",
    "38CWS74285MFGZZXR09Z",
]
LABELED_16 = LABELED_8 + [
    "3C2QTUNI0852XV7ZH4Q1",
    "3DA0T2V6JJ2NLUAV6FWM",
    "4498CA6DZWELOXCBRYRF",
    "45C45I6IXAFGNRO067W9",
    "4CHFJGF6ZUM7CMZTNFQF",
    "4EPVTT1HPA8U60CDUKXE",
    "57SGAJMLCTCH92QUA0EE",
    "5BHTH9RHH3PQT913I59W",
]
VALIDATION_8 = [
    "Q0MEX9ZIKAGJORSPLQ3Y",
    "Q7J0WYM695R9MA285ZW0",
    "QZC1W0FNR19KJFLOCFLH",
    "R8ER97O9UUN77C02VE2J",
    "RSZY41MT2FGDKHWWL5L2",
    "SN4LF8SGBSRQUPTDSX78",
    "TDDI6L3Y0L9VVFP9MNFS",
    "UZUZZT2W9IUSHL6ASOX3",
]


def test_lists_match_protocol(la):
    assert hashlib.md5((la / "train.list").read_bytes()).hexdigest() == "ded9b3bf69cd44ddeda212e30a9f5b00"
    assert hashlib.md5((la / "test.list").read_bytes()).hexdigest() == "c8b450d0ab549f4c1e8bcecec45f0209"
    train, test = get_layout("la").read_lists(la)
    assert (len(train), len(test)) == (80, 20)
    assert train == sorted(train)


def test_reference_splits(la):
    train, test = get_layout("la").read_lists(la)
    for labels, expected in [(8, LABELED_8), ("10%", LABELED_8), (16, LABELED_16), ("20%", LABELED_16)]:
        split = make_split(train, test, labels)
        assert list(split.labeled) == expected
        assert len(split.unlabeled) == 80 - len(expected) and split.validation == ()
        assert split.test == tuple(test)
    split = make_split(train, test, "10%", validation=8)
    assert list(split.labeled) == LABELED_8 and list(split.validation) == VALIDATION_8
    assert len(split.unlabeled) == 64


def test_cases_load(la):
    layout = get_layout("la")
    ids = [layout.train_ids(la)[0], layout.test_ids(la)[0]]
    store = CaseStore.load(layout, la, ids, progress=False)
    for case in store.values():
        assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
        assert case.image.shape == case.label.shape and case.shape[2] == 88
        assert 148 <= case.shape[0] <= 244 and 132 <= case.shape[1] <= 160
        assert set(np.unique(case.label)) == {0, 1}
        assert case.spacing == (0.625, 0.625, 0.625)
    first = store[ids[0]].image
    assert abs(float(first.mean()) - 1.46) < 0.01 and abs(float(first.std()) - 1.65) < 0.01
    # LeFeD official 96^3 patch: Z = 88 padded by 7 per side, X and Y (>= 101) untouched.
    assert crop_padding(first.shape, (96, 96, 96)) == (0, 0, 7)
    image, label = random_crop(first, store[ids[0]].label, (96, 96, 96), rng(0))
    assert image.shape == label.shape == (96, 96, 96)

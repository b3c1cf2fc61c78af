import numpy as np
import pytest

from benchmarks.data.seeding import rng
from benchmarks.data.transforms import center_crop, crop_padding, random_crop, random_rot_flip
from benchmarks.errors import ConfigError


def coded(shape):
    """Image whose value encodes the voxel position; label a function of the value."""
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return image, (image.astype(np.int64) % 3 == 0).astype(np.uint8)


def reference_crop(image, patch, offsets, pad):
    padded = np.pad(image, [(q, q) for q in pad])
    return padded[tuple(slice(o, o + p) for o, p in zip(offsets, patch))]


def test_rot_flip_matches_official_semantics():
    image, label = coded((6, 5, 4))
    seen = set()
    for seed in range(64):
        draw = rng(seed)
        k, axis = int(draw.integers(0, 4)), int(draw.integers(0, 2))
        seen.add((k, axis))
        out_image, out_label = random_rot_flip(image, label, rng(seed))
        expected = np.flip(np.rot90(image, k), axis=axis)
        assert np.array_equal(out_image, expected)
        assert np.array_equal(out_label, (out_image.astype(np.int64) % 3 == 0))  # still aligned
        assert out_image.flags.c_contiguous and out_label.flags.c_contiguous
        assert np.array_equal(np.sort(out_image, axis=None), np.sort(image, axis=None))
        for z in range(4):  # Z is never flipped or rotated
            assert set(out_image[:, :, z].ravel()) == set(image[:, :, z].ravel())
    assert seen == {(k, a) for k in range(4) for a in range(2)}


def test_rot_flip_without_label():
    image, _ = coded((6, 5, 4))
    out, none = random_rot_flip(image, None, rng(3))
    assert none is None and np.array_equal(out, random_rot_flip(image, image, rng(3))[1])


@pytest.mark.parametrize(
    ("shape", "patch", "pad"),
    [
        ((183, 140, 88), (96, 96, 96), (0, 0, 7)),  # LA with LeFeD's official 96^3 patch
        ((183, 140, 88), (112, 112, 80), (0, 0, 0)),  # LA protocol patch: no padding
        ((98, 200, 90), (96, 96, 96), (2, 0, 6)),  # an axis 2 larger than the patch is padded too
        ((97, 99, 96), (96, 96, 96), (2, 1, 3)),  # s == p triggers the rule
        ((97, 97, 97), (96, 96, 96), (0, 0, 0)),
    ],
)
def test_crop_padding_rule(shape, patch, pad):
    assert crop_padding(shape, patch) == pad


@pytest.mark.parametrize(("shape", "patch"), [((9, 7, 6), (4, 4, 4)), ((5, 3, 7), (4, 4, 4)), ((3, 2, 1), (4, 4, 4))])
def test_random_crop_equals_pad_then_slice(shape, patch):
    image, label = coded(shape)
    image += 1  # keep 0 for padding
    pad = crop_padding(shape, patch)
    for seed in range(20):
        draw = rng(seed)
        offsets = [int(draw.integers(0, s + 2 * q - p)) for s, q, p in zip(shape, pad, patch)]
        out_image, out_label = random_crop(image, label, patch, rng(seed))
        assert out_image.shape == out_label.shape == patch
        assert out_image.dtype == image.dtype and out_label.dtype == label.dtype
        assert out_image.flags.c_contiguous
        assert np.array_equal(out_image, reference_crop(image, patch, offsets, pad))
        assert np.array_equal(out_label, reference_crop(label, patch, offsets, pad))


@pytest.mark.parametrize(
    ("shape", "patch", "offsets"),
    [
        ((6, 5, 4), (3, 3, 3), [{0, 1, 2}, {0, 1}, {0}]),  # no padding: s - p - 1 is the last offset
        ((4, 9, 4), (4, 4, 4), [set(range(6)), set(range(5)), set(range(6))]),  # padded to (10, 9, 10)
    ],
)
def test_crop_offsets_never_reach_last_position(shape, patch, offsets):
    image, _ = coded(shape)
    pad = crop_padding(shape, patch)
    padded = np.pad(image + 1, [(q, q) for q in pad])
    seen = [set(), set(), set()]
    for seed in range(300):
        out, _ = random_crop(image + 1, None, patch, rng(seed))
        matches = [
            o
            for o in np.ndindex(*(s - p + 1 for s, p in zip(padded.shape, patch)))
            if np.array_equal(padded[tuple(slice(a, a + p) for a, p in zip(o, patch))], out)
        ]
        assert len(matches) == 1
        for axis in range(3):
            seen[axis].add(matches[0][axis])
    assert seen == offsets


def test_center_crop():
    image, label = coded((9, 10, 3))
    out_image, out_label = center_crop(image + 1, label, (4, 4, 4))
    pad = crop_padding((9, 10, 3), (4, 4, 4))
    assert pad == (0, 0, 3)  # padded (9, 10, 9)
    offsets = [round((s + 2 * q - 4) / 2) for s, q in zip((9, 10, 3), pad)]
    assert offsets == [2, 3, 2]  # Python's round: 2.5 -> 2
    assert np.array_equal(out_image, reference_crop(image + 1, (4, 4, 4), offsets, pad))
    assert np.array_equal(out_label, reference_crop(label, (4, 4, 4), offsets, pad))
    assert center_crop(image, None, (4, 4, 4))[1] is None


def test_input_checks():
    image, label = coded((6, 5, 4))
    with pytest.raises(ConfigError, match="patch must be three positive ints"):
        random_crop(image, label, (4, 4), rng(0))
    with pytest.raises(ConfigError, match="patch must be three positive ints"):
        center_crop(image, label, (4, 0, 4))
    with pytest.raises(ValueError, match="label shape"):
        random_crop(image, label[:-1], (4, 4, 4), rng(0))
    with pytest.raises(ValueError, match="3-D"):
        random_rot_flip(image[0], None, rng(0))

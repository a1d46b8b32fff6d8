"""Augmentations on known inputs: exact windows, exact mirrors, exact squares, reproducibility."""

import pytest
import torch

from speedtrain import augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def arange_images(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Every pixel value unique, so an output pixel tells where it came from."""
    return torch.arange(n * c * h * w, dtype=torch.int64).view(n, c, h, w)


def test_reflect_pad_mirrors_without_repeating_the_edge():
    row = torch.tensor([0, 1, 2, 3], dtype=torch.uint8).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    padded = augment.reflect_pad(row, 2)
    assert padded.shape == (1, 1, 8, 8) and padded.dtype == torch.uint8
    assert padded[0, 0, 0].tolist() == [2, 1, 0, 1, 2, 3, 2, 1]


def test_crop_gives_an_exact_window_at_every_offset_in_range():
    pad, h, w = 2, 4, 5
    images = arange_images(600, 2, h + 2 * pad, w + 2 * pad)
    out = augment.random_crop(images, (h, w), gen())
    assert out.shape == (600, 2, h, w)
    offsets = set()
    for i in range(len(images)):
        # The first pixel's value locates the window; the whole window must match it.
        top, left = divmod(int(out[i, 0, 0, 0] - images[i, 0, 0, 0]), w + 2 * pad)
        assert 0 <= top <= 2 * pad and 0 <= left <= 2 * pad
        assert torch.equal(out[i], images[i, :, top:top + h, left:left + w])
        offsets.add((top, left))
    assert len(offsets) == (2 * pad + 1) ** 2  # every translation is drawn


def test_crop_to_the_same_size_is_identity():
    images = arange_images(3, 3, 8, 8)
    assert torch.equal(augment.random_crop(augment.reflect_pad(images, 0), (8, 8), gen()), images)


def test_flip_mirrors_exactly_the_chosen_images():
    images = arange_images(64, 3, 4, 6)
    out = augment.random_flip(images, gen(3))
    chosen = augment.flip_mask(64, gen(3), images.device)  # same seed: the same choice
    assert 0 < chosen.sum() < 64
    assert torch.equal(out[chosen], images[chosen].flip(-1))
    assert torch.equal(out[~chosen], images[~chosen])


@pytest.mark.parametrize("size", [2, 3, 4])
def test_cutout_zeroes_one_clipped_square_and_nothing_else(size):
    n, c, h, w = 500, 3, 8, 8
    images = torch.rand(n, c, h, w) + 1  # no zeros to begin with
    out = augment.cutout(images, size, gen(1))
    zeroed = out == 0
    assert torch.equal(zeroed, zeroed[:, :1].expand_as(zeroed))  # the same square in every channel
    assert torch.equal(out[~zeroed], images[~zeroed])  # nothing else changed
    assert torch.equal(zeroed[:, 0], augment.cutout_mask(n, h, w, size, gen(1), images.device))  # where drawn
    counts = zeroed[:, 0].sum((1, 2))
    assert counts.max() == size * size and 0 < counts.min() < size * size  # full inside, clipped at borders
    for mask in zeroed[:, 0]:  # each zeroed region is one axis-aligned rectangle of side <= size
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols) and len(rows) <= size and len(cols) <= size
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)


def test_cutout_zero_is_identity():
    images = torch.rand(4, 3, 8, 8)
    assert torch.equal(augment.cutout(images, 0, gen()), images)


@pytest.mark.parametrize("fn", [
    lambda x, g: augment.random_crop(augment.reflect_pad(x, 2), (8, 8), g),
    augment.random_flip,
    lambda x, g: augment.cutout(x, 4, g),
])
def test_same_seed_same_output_other_seed_other_output(fn):
    images = torch.randint(1, 256, (32, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(fn(images, gen(7)), fn(images, gen(7)))
    assert not torch.equal(fn(images, gen(7)), fn(images, gen(8)))


def test_a_batch_of_one_works_as_in_the_per_sample_loader():
    image = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    out = augment.random_flip(augment.random_crop(augment.reflect_pad(image, 2), (8, 8), gen()), gen())
    assert out.shape == (1, 3, 8, 8) and out.dtype == torch.uint8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_normalize(dtype):
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 2, 1, 3)
    mean, std = torch.tensor([0.2, 0.5]), torch.tensor([0.5, 0.25])
    out = augment.normalize(images, mean, std, dtype)
    assert out.dtype == dtype
    expected = torch.tensor([[-0.4, 0.0, 1.6], [-2.0, -1.2, 2.0]]).view(1, 2, 1, 3)
    torch.testing.assert_close(out.float(), expected, atol=1e-2 if dtype != torch.float32 else 1e-6, rtol=0)

"""Augmentations on known inputs: exact windows, exact mirrors, exact squares, reproducibility."""

import pytest
import torch

from speedtrain.data import augment
from speedtrain.common.errors import ConfigError


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


@pytest.mark.parametrize("size", [2, 3, 4, 8])
def test_cutout_zeroes_one_whole_square_and_nothing_else(size):
    n, c, h, w = 500, 3, 8, 8
    images = torch.rand(n, c, h, w) + 1  # no zeros to begin with
    out = augment.cutout(images, size, gen(1))
    zeroed = out == 0
    assert torch.equal(zeroed, zeroed[:, :1].expand_as(zeroed))  # the same square in every channel
    assert torch.equal(out[~zeroed], images[~zeroed])  # nothing else changed
    assert torch.equal(zeroed[:, 0], augment.cutout_mask(n, h, w, size, gen(1), images.device))  # where drawn
    assert (zeroed[:, 0].sum((1, 2)) == size * size).all()  # cifar10-fast: never clipped by a border
    for mask in zeroed[:, 0]:  # each zeroed region is one size x size square
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert len(rows) == len(cols) == size and mask.sum() == size * size
        assert rows[-1] - rows[0] + 1 == size and cols[-1] - cols[0] + 1 == size


def test_cutout_distribution_is_cifar10_fasts():
    """cifar10-fast's Cutout(8, 8) picks the top-left corner uniformly among the 25 x 25 positions
    ``x0 in range(W + 1 - w)`` (core.py): area always 64, a corner pixel cut with probability
    1/625, the centre pixel (15, 15) with (8/25)**2 = 64/625 (rows 8..15 cover row 15)."""
    n = 40_000  # 64 expected corner cuts: 4 sigma is half of that, and a clipped square cuts 10x more
    mask = augment.cutout_mask(n, 32, 32, 8, gen(7), torch.device("cpu"))
    assert mask.sum((1, 2)).float().mean() == 64  # the clipped square averaged 56
    freq = mask.float().mean(0)
    for corner in (freq[0, 0], freq[0, 31], freq[31, 0], freq[31, 31]):
        assert abs(float(corner) - 1 / 625) < 4 * (1 / 625 / n) ** 0.5  # 4 sigma of a binomial
    assert abs(float(freq[15, 15]) - 64 / 625) < 4 * (64 / 625 * (1 - 64 / 625) / n) ** 0.5
    tops = mask.any(2).int().argmax(1)  # first cut row: uniform on 0..24
    assert tops.min() == 0 and tops.max() == 24
    counts = torch.bincount(tops, minlength=25).float()
    assert (counts - n / 25).abs().max() < 5 * (n / 25) ** 0.5


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


# --- the 100-image study's augmentations ------------------------------------------------------

def unique_images(n: int, c: int = 3, side: int = 8) -> torch.Tensor:
    """Distinct pixel values, so any moved pixel is visible and every rotation changes the image."""
    return arange_images(n, c, side, side)


def test_rotate90_rotates_each_image_by_its_drawn_turns():
    images = unique_images(400)
    out = augment.random_rotate90(images, gen(5))
    turns = augment.rotation_turns(400, gen(5), images.device)  # same seed: the same draw
    for i in range(len(images)):
        assert torch.equal(out[i], torch.rot90(images[i], int(turns[i]), dims=(1, 2)))
    counts = torch.bincount(turns, minlength=4)
    assert counts.min() > 70  # each of 0..3 drawn about 100 times in 400
    assert torch.equal(out.flatten(1).sort(1).values, images.flatten(1).sort(1).values)  # pixels kept


def test_rotate90_changes_about_three_quarters_of_the_images():
    images = unique_images(4000, c=1, side=4)
    changed = (augment.random_rotate90(images, gen(1)) != images).flatten(1).any(1).float().mean()
    assert abs(changed - 0.75) < 0.03  # 4000 draws: the standard error is 0.007


def test_rotate90_refuses_non_square_images():
    with pytest.raises(ConfigError, match="square"):
        augment.random_rotate90(arange_images(2, 3, 4, 6), gen())


def patch_sources(out: torch.Tensor, images: torch.Tensor, grid: int) -> list[list[int]]:
    """For each image, the index of the input patch found in each output slot (row-major)."""
    n, _, h, w = images.shape
    ph, pw = h // grid, w // grid
    slots = [(r * ph, q * pw) for r in range(grid) for q in range(grid)]
    sources = []
    for i in range(n):
        found = []
        for top, left in slots:
            patch = out[i, :, top:top + ph, left:left + pw]
            match = [j for j, (t, l) in enumerate(slots) if torch.equal(patch, images[i, :, t:t + ph, l:l + pw])]
            assert len(match) == 1  # every output patch is exactly one input patch
            found.append(match[0])
        sources.append(found)
    return sources


@pytest.mark.parametrize("grid", [2, 4])
def test_patch_shuffle_permutes_whole_patches(grid):
    images = unique_images(300)
    out = augment.patch_shuffle(images, grid, gen(2), p=1.0)
    sources = patch_sources(out, images, grid)
    assert all(sorted(s) == list(range(grid * grid)) for s in sources)  # a permutation of the patches
    moved = sum(s != list(range(grid * grid)) for s in sources) / len(sources)
    assert moved > 0.9  # the identity has probability 1/4! or 1/16!
    assert len({tuple(s) for s in sources}) > 20  # each image draws its own order


def test_patch_shuffle_applies_to_the_chosen_fraction_only():
    images = unique_images(2000, c=1, side=4)
    out = augment.patch_shuffle(images, 2, gen(3), p=0.5)
    changed = (out != images).flatten(1).any(1).float().mean()
    assert abs(changed - 0.5 * (1 - 1 / 24)) < 0.04  # chosen, and not drawn the identity of 4! orders


def test_patch_shuffle_grid_one_is_identity_and_bad_grids_are_refused():
    images = unique_images(3)
    assert torch.equal(augment.patch_shuffle(images, 1, gen(), p=1.0), images)
    for grid in (0, 3):
        with pytest.raises(ConfigError, match="divide"):
            augment.patch_shuffle(images, grid, gen())


def test_isolate_channel_keeps_one_channel_of_the_chosen_images():
    images = torch.randint(1, 256, (3000, 3, 4, 4), dtype=torch.uint8)  # no zeros to begin with
    out = augment.isolate_channel(images, gen(4), p=0.5)
    zeroed = (out == 0).all((2, 3))  # (N, C): channel wiped out
    kept = (out == images).all((2, 3))
    assert torch.equal(zeroed | kept, torch.ones_like(kept))  # a channel is kept whole or zeroed
    isolated = zeroed.any(1)
    assert torch.equal(zeroed[isolated].sum(1), torch.full((int(isolated.sum()),), 2))  # exactly one left
    assert abs(isolated.float().mean() - 0.5) < 0.04
    which = kept[isolated].float().argmax(1)
    assert torch.bincount(which, minlength=3).min() > 0.25 * len(which)  # each colour kept about 1/3


def test_isolate_channel_is_a_no_op_on_one_channel_images():
    images = torch.randint(1, 256, (16, 1, 4, 4), dtype=torch.uint8)
    assert torch.equal(augment.isolate_channel(images, gen(), p=1.0), images)


def test_mix_images_blends_each_image_with_its_partner_and_mixes_targets():
    images = torch.rand(64, 3, 4, 4)
    labels = torch.randint(0, 5, (64,))
    mixed = augment.mix_images(images, 0.3, gen(6))
    assert sorted(mixed.partner.tolist()) == list(range(64))  # partners are a permutation
    assert (mixed.partner != torch.arange(64)).float().mean() > 0.8
    torch.testing.assert_close(mixed.images, 0.7 * images + 0.3 * images[mixed.partner])
    targets = mixed.targets(labels, 5)
    torch.testing.assert_close(targets.sum(1), torch.ones(64))
    i = int((labels != labels[mixed.partner]).nonzero()[0])
    assert targets[i, labels[i]] == pytest.approx(0.7) and targets[i, labels[mixed.partner[i]]] == pytest.approx(0.3)


def test_mix_images_refuses_raw_images_and_ratios_outside_zero_one():
    with pytest.raises(ValueError, match="floating-point"):
        augment.mix_images(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 0.5, gen())
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        augment.mix_images(torch.zeros(2, 3, 4, 4), 1.5, gen())


def test_a_batch_of_one_works_for_the_per_sample_augmentations():
    image = torch.randint(1, 256, (1, 3, 8, 8), dtype=torch.uint8)
    for out in (augment.random_rotate90(image, gen()), augment.patch_shuffle(image, 2, gen()),
                augment.isolate_channel(image, gen())):
        assert out.shape == (1, 3, 8, 8) and out.dtype == torch.uint8
    single = augment.mix_images(image.float(), 0.5, gen())
    assert torch.equal(single.images, image.float())  # its own partner


@pytest.mark.parametrize("fn", [
    augment.random_rotate90,
    lambda x, g: augment.patch_shuffle(x, 2, g),
    augment.isolate_channel,
    lambda x, g: augment.mix_images(x.float(), 0.5, g).images,
])
def test_study_augmentations_same_seed_same_output_other_seed_other_output(fn):
    images = torch.randint(1, 256, (32, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(fn(images, gen(7)), fn(images, gen(7)))
    assert not torch.equal(fn(images, gen(7)), fn(images, gen(8)))

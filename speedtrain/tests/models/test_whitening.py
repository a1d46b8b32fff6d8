"""myrtle.ai's 3x3 patch whitening (speedtrain.models.whitening) against cifar10-fast's own arithmetic."""

import numpy as np
import pytest
import torch

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError
from speedtrain.models.registry import build_model
from speedtrain.models.whitening import WHITEN_EPS, init_patch_whitening, myrtle_whitening_filters, patch_covariance


def notebook_filters(images: np.ndarray, eps: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """bag_of_tricks.ipynb cell 70/72, in float64 numpy: patches() by unfold/transpose/reshape,
    cov(X) = (X / sqrt(n - 1))^T (X / sqrt(n - 1)), symeig (ascending) flipped, V / sqrt(Λ + eps)."""
    t = torch.from_numpy(images)
    c = t.size(1)
    patches = t.unfold(2, 3, 1).unfold(3, 3, 1).transpose(1, 3).reshape(-1, c, 3, 3).numpy()
    x = patches.reshape(len(patches), c * 9)
    x = x / np.sqrt(x.shape[0] - 1)
    sigma = x.T @ x
    lam, v = np.linalg.eigh(sigma)
    lam, v = lam[::-1], v.T.reshape(c * 9, c, 3, 3)[::-1]
    return lam, v / np.sqrt(lam + eps)[:, None, None, None]


def images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 12, 12, generator=g)
    return x + 0.5 * x.roll(1, dims=3) + 0.3 * x[:, :1]  # correlated neighbours and channels


def test_filters_match_the_notebooks_up_to_sign():
    x = images()
    ours = myrtle_whitening_filters(x).double().numpy()
    lam, theirs = notebook_filters(x.double().numpy(), WHITEN_EPS)
    assert ours.shape == (27, 3, 3, 3)
    for a, b in zip(ours, theirs):  # an eigenvector's sign is arbitrary
        sign = np.sign((a * b).sum())
        np.testing.assert_allclose(a, sign * b, rtol=2e-3, atol=2e-4)
    assert lam[0] > lam[-1]  # largest eigenvalue first


def test_covariance_is_uncentred_over_n_minus_1_and_chunking_changes_nothing():
    x = images(2500, seed=1) + 3.0  # a mean far from 0: a centred covariance would differ
    rows = torch.from_numpy(np.ascontiguousarray(
        x.double().unfold(2, 3, 1).unfold(3, 3, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 27).numpy()))
    expected = rows.T @ rows / (rows.shape[0] - 1)
    torch.testing.assert_close(patch_covariance(x).double(), expected, rtol=1e-4, atol=1e-3)


def test_filtered_patches_are_decorrelated():
    x = images(256, seed=2)
    f = myrtle_whitening_filters(x)
    out = torch.nn.functional.conv2d(x, f)  # every valid patch, as the covariance saw them
    flat = out.permute(1, 0, 2, 3).reshape(27, -1)
    second = flat @ flat.T / (flat.shape[1] - 1)
    lam = torch.linalg.eigvalsh(patch_covariance(x)).flip(0)
    torch.testing.assert_close(second, torch.diag(lam / (lam + WHITEN_EPS)), rtol=1e-3, atol=1e-3)


def test_resnet9_prep_is_whitening_then_1x1_and_the_trainer_fills_it():
    cfg = TrainConfig(whiten=True, width=0.25)
    net = build_model(cfg)
    prep = net.prep
    assert list(dict(prep.named_children())) == ["whiten", "conv", "bn", "act"]
    assert prep.whiten.weight.shape == (27, 3, 3, 3) and prep.whiten.padding == (1, 1) and prep.whiten.bias is None
    assert not prep.whiten.weight.requires_grad and prep.conv.kernel_size == (1, 1) and prep.conv.weight.shape[1] == 27
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    x = images(32)
    seconds = init_patch_whitening(prep.whiten, x)
    assert seconds >= 0
    torch.testing.assert_close(prep.whiten.weight, myrtle_whitening_filters(x))


def test_the_trainer_whitens_resnet9_off_the_clock():
    from speedtrain.train.loop import train

    cfg = TrainConfig(synthetic=True, train_subset=64, test_subset=32, batch_size=32, width=0.125, epochs=1,
                      device="cpu", warmup_steps=0, whiten=True, whiten_images=16, cutout=0)
    result = train(cfg)
    assert result.status == "ok" and result.whiten_s is not None and result.whiten_s > 0


@pytest.mark.parametrize("model", ["resnet18", "resnet20"])
def test_whiten_is_refused_for_other_resnets(model):
    with pytest.raises(ConfigError, match="whiten applies to model airbench"):
        TrainConfig(model=model, whiten=True)


def test_init_refuses_a_conv_of_the_wrong_shape():
    with pytest.raises(ValueError, match="27 filters"):
        init_patch_whitening(torch.nn.Conv2d(3, 24, 2), images(4))

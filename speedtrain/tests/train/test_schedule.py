import math

import pytest

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.schedule import PiecewiseLinear, WarmupCosine, lr_schedule


def test_piecewise_linear_interpolates_and_is_flat_outside():
    s = PiecewiseLinear((0.0, 5.0, 24.0), (0.0, 0.4, 0.0))
    assert s(-1) == 0.0 and s(0) == 0.0 and s(24) == 0.0 and s(30) == 0.0
    assert s(5) == pytest.approx(0.4)
    assert s(2.5) == pytest.approx(0.2)
    assert s(14.5) == pytest.approx(0.2)


def test_piecewise_linear_rejects_bad_knots():
    with pytest.raises(ValueError):
        PiecewiseLinear((0.0, 2.0, 1.0), (0.0, 1.0, 0.0))
    with pytest.raises(ValueError):
        PiecewiseLinear((0.0,), (1.0,))


def test_myrtle_schedule_peaks_at_epoch_five_of_twenty_four():
    s = lr_schedule(TrainConfig())
    assert s(5.0) == pytest.approx(0.4)
    assert s(24.0) == pytest.approx(0.0)
    assert s(1.0) == pytest.approx(0.08)


def test_onecycle_warms_up_linearly_then_decays_by_cosine():
    s = lr_schedule(TrainConfig(schedule="onecycle", epochs=10, warmup_frac=0.2, lr=1.0))
    assert isinstance(s, WarmupCosine)
    assert s(1.0) == pytest.approx(0.5)
    assert s(2.0) == pytest.approx(1.0)
    assert s(6.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s(10.0) == pytest.approx(0.0)


def test_constant_stays_at_peak_after_warm_up():
    s = lr_schedule(TrainConfig(schedule="constant", epochs=10, warmup_frac=0.1, lr=0.2))
    assert s(0.5) == pytest.approx(0.1)
    assert s(3.0) == pytest.approx(0.2) and s(10.0) == pytest.approx(0.2)
    assert lr_schedule(TrainConfig(schedule="constant", warmup_frac=0.0, lr=0.3))(0.0) == pytest.approx(0.3)


def test_a_repeated_knot_takes_the_later_value():
    s = PiecewiseLinear((0.0, 0.0, 24.0), (0.0, 0.4, 0.0))
    assert s(0.0) == pytest.approx(0.4) and s(12.0) == pytest.approx(0.2)
    step = PiecewiseLinear((0.0, 5.0, 5.0, 10.0), (0.0, 1.0, 0.5, 0.5))
    assert step(5.0) == pytest.approx(0.5) and step(4.0) == pytest.approx(0.8)

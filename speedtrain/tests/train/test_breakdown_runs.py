"""The step breakdown on real CPU training runs of the shared trainer (tiny synthetic runs)."""

from __future__ import annotations

import json

import pytest

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.records.result import RunResult
from speedtrain.train.loop import train

TINY = dict(synthetic=True, device="cpu", width=0.125, batch_size=32, train_subset=64, test_subset=32, epochs=1,
            warmup_steps=1, breakdown_steps=2)


@pytest.fixture(scope="module")
def nchw() -> RunResult:
    return train(TrainConfig(**TINY))


@pytest.fixture(scope="module")
def nhwc() -> RunResult:
    return train(TrainConfig(**TINY, channels_last=True))


def test_the_categories_add_up_to_the_profiled_step(nchw):
    bd = nchw.breakdown
    assert bd is not None and bd.basis == "cpu" and bd.steps == 2 and bd.seed == 0
    assert sum(bd.ms.values()) == pytest.approx(bd.step_ms, rel=0.03)
    # the profiled step is a training step of the timed run's kind: the same order of time
    # (2 steps per epoch; the loader's per-epoch crop and flip fall outside the profiled steps)
    assert 0.2 < bd.step_ms / 1000 / (nchw.train_time_s / 2) < 5
    assert {"convolution", "batch_norm", "pooling", "loss", "optimizer", "loader"} <= set(bd.ms)
    assert bd.profile_s is not None and bd.profile_s > 0


def test_the_optimizer_step_appears_with_its_fused_implementation_named(nchw):
    assert nchw.optimizer_impl == "fused"
    assert nchw.breakdown.ms["optimizer"] > 0
    assert "aten::_fused_sgd_" in nchw.breakdown.leading["optimizer"]


def test_channels_last_fp32_spends_more_on_layout_conversions_than_nchw(nchw, nhwc):
    """What the CPU does: the loader hands the model NHWC images and oneDNN convolves them in NHWC,
    but the NHWC run's convolution backward converts tensors (``aten::copy_ < aten::_to_copy <
    aten::to < aten::convolution_backward`` in its profile), which the NCHW run does not; so on a
    CPU in fp32 channels_last adds layout time rather than removing it. (Fused SGD also makes the
    NHWC weights contiguous: that copy counts in the optimizer step, its scope.)"""
    assert nhwc.breakdown.ms.get("layout", 0.0) > nchw.breakdown.ms.get("layout", 0.0)


def test_the_timer_policy_says_the_breakdown_is_after_the_clock(nchw):
    assert any("2 training steps profiled with torch.profiler after the last epoch" in line and "off the clock" in line
               for line in nchw.timer["excludes"])


def test_the_breakdown_survives_the_json_result(nchw, tmp_path):
    path = tmp_path / "run.json"
    nchw.save_json(str(path))
    assert RunResult.from_dict(json.loads(path.read_text())).breakdown == nchw.breakdown


def test_train_writes_a_chrome_trace_and_off_means_no_profile(tmp_path):
    trace = tmp_path / "t" / "case.pt.trace.json"
    result = train(TrainConfig(**{**TINY, "breakdown_steps": 1}), trace=str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("name") == "aten::_fused_sgd_" for e in events)
    assert result.breakdown.steps == 1
    off = train(TrainConfig(**{**TINY, "breakdown_steps": 0}))
    assert off.breakdown is None and not any("profiled" in line for line in off.timer["excludes"])


@pytest.mark.slow
def test_the_smoke_suite_records_a_one_step_breakdown_of_every_case(smoke_data):
    """The smoke profile runs the whole path (profile, record, save) with 1 profiled step."""
    ran = [b["extra_info"] for b in smoke_data["benchmarks"] if b["extra_info"]["status"] == "ok"]
    assert ran
    for info in ran:
        assert info["breakdown"]["steps"] == 1 and info["breakdown"]["basis"] == "cpu"
        assert sum(info["breakdown"]["ms"].values()) == pytest.approx(info["breakdown"]["step_ms"], rel=0.03)
        assert any("profiled with torch.profiler" in line for line in info["timer"]["excludes"])

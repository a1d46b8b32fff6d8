"""The step breakdown (speedtrain.train.breakdown): categorisation of recorded profiler events (CPU,
and CUDA kernels correlated to their launching ops), then real CPU runs of the trainer."""

from __future__ import annotations

import pytest

from speedtrain.train.breakdown import (BACKWARD_PREFIX, BreakdownError, canonical, categorize, category_of, trace_name)
from speedtrain.records.breakdown import Breakdown, TopOp
from speedtrain.tests.train.fake_profiler import BACKWARD, FakeProfile

# Op names as a CPU profile of the trainer records them (resnet9, fp32, fused SGD).
REAL_OPS = [
    ("aten::conv2d", "convolution"), ("aten::mkldnn_convolution", "convolution"),
    ("autograd::engine::evaluate_function: ConvolutionBackward0", "convolution"),
    ("aten::convolution_backward", "convolution"), ("aten::native_batch_norm", "batch_norm"),
    ("aten::native_batch_norm_backward", "batch_norm"), ("NativeBatchNormBackward0", "batch_norm"),
    ("aten::max_pool2d_with_indices", "pooling"), ("aten::adaptive_max_pool2d_backward", "pooling"),
    ("aten::threshold_backward", "elementwise"), ("aten::relu_", "elementwise"), ("MulBackward0", "elementwise"),
    ("aten::cross_entropy_loss", "loss"), ("aten::_log_softmax_backward_data", "loss"), ("NllLossBackward0", "loss"),
    ("aten::mm", "matmul"), ("aten::linear", "matmul"), ("autograd::engine::evaluate_function: MmBackward0", "matmul"),
    ("aten::_fused_sgd_", "optimizer"), ("Optimizer.step#SGD.step", "optimizer"),
    ("Optimizer.zero_grad#SGD.zero_grad", "optimizer"), ("aten::_amp_update_scale_", "optimizer"),
    ("aten::_foreach_add_", "optimizer"), ("aten::copy_", "layout"), ("aten::_to_copy", "layout"),
    ("aten::contiguous", "layout"), ("ToCopyBackward0", "layout"), ("speedtrain.loader", "loader"),
    ("nccl:all_reduce", "communication"), ("gloo:all_reduce", "communication"),
    ("torch::autograd::AccumulateGrad", "other"), ("aten::argmax", "other"), ("ProfilerStep*", "host"),
]


@pytest.mark.parametrize("name, category", REAL_OPS)
def test_a_lone_op_is_categorised_by_its_name(name, category):
    p = FakeProfile()
    op = p.op(name, 0, 10)
    p.events()
    assert category_of(op) == category


def test_canonical_names_join_an_op_its_backward_and_its_autograd_node():
    assert {canonical(n) for n in ("aten::log_softmax", "aten::_log_softmax_backward_data", "LogSoftmaxBackward0",
                                   f"{BACKWARD_PREFIX}LogSoftmaxBackward0")} == {"logsoftmax"}


def _cpu_step(p: FakeProfile, t0: float) -> None:
    """One training step of 1000 us as the trainer's CPU profile nests it."""
    p.op("ProfilerStep*", t0, t0 + 1000, annotation=True)
    p.op("speedtrain.loader", t0 + 10, t0 + 110, annotation=True)
    p.op("aten::index", t0 + 20, t0 + 60)
    p.op("aten::contiguous", t0 + 60, t0 + 100)  # the loader's own layout change stays the loader's
    p.op("aten::conv2d", t0 + 120, t0 + 420)
    p.op("aten::convolution", t0 + 125, t0 + 415)
    p.op("aten::mkldnn_convolution", t0 + 130, t0 + 350)
    p.op("aten::copy_", t0 + 350, t0 + 400)  # a reorder inside the convolution: a layout conversion
    p.op("aten::cross_entropy_loss", t0 + 430, t0 + 480)
    p.op("aten::mul", t0 + 440, t0 + 450)  # elementwise, but inside the loss: the loss's
    p.op(f"{BACKWARD_PREFIX}ConvolutionBackward0", t0 + 500, t0 + 800)
    p.op("ConvolutionBackward0", t0 + 505, t0 + 795)
    p.op("aten::convolution_backward", t0 + 510, t0 + 790)
    p.op("Optimizer.step#SGD.step", t0 + 820, t0 + 900, annotation=True)
    p.op("aten::_fused_sgd_", t0 + 830, t0 + 870)


def test_cpu_self_times_by_category_add_up_to_the_step():
    p = FakeProfile()
    _cpu_step(p, 0)  # a settle step's leftovers are outside the profiled steps
    _cpu_step(p, 1000)
    _cpu_step(p, 2000)
    bd = categorize(p.events(), n_steps=2)
    assert bd.basis == "cpu" and bd.step_ms == pytest.approx(1.0) and bd.idle_ms is None
    assert bd.ms == pytest.approx({"convolution": 0.55, "loss": 0.05, "optimizer": 0.08, "loader": 0.1,
                                   "layout": 0.05, "host": 0.17})
    assert sum(bd.ms.values()) == pytest.approx(bd.step_ms)
    assert bd.top[0] == TopOp("aten::convolution_backward", "convolution", pytest.approx(0.28))
    assert bd.leading["optimizer"][0] == "aten::_fused_sgd_"  # the op, before the annotation's own time
    assert bd.leading["host"] == ["(host, outside ops)"]


def test_too_few_steps_in_the_profile_is_an_error():
    p = FakeProfile()
    _cpu_step(p, 0)
    with pytest.raises(BreakdownError, match="1 ProfilerStep"):
        categorize(p.events(), n_steps=2)


def _gpu_step(p: FakeProfile, t0: float) -> None:
    """One 1000 us step on a GPU: ops launch kernels; backward runs on the autograd device thread;
    the GPU is busy 600 us of it (two kernels overlap by 50 us)."""
    step = p.op("ProfilerStep*", t0, t0 + 1000, annotation=True)
    p.kernel(step, "ProfilerStep#1", t0, t0 + 1000, activity="gpu_user_annotation")  # the range's GPU mirror
    conv = p.op("aten::cudnn_convolution", t0 + 10, t0 + 30)
    p.op("aten::conv2d", t0 + 5, t0 + 40)
    p.kernel(conv, "void cudnn::ops::nchwToNhwcKernel<float, float, float, false, true>", t0 + 50, t0 + 100)
    p.kernel(conv, "sm80_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nchw", t0 + 100, t0 + 300)
    bn = p.op("aten::cudnn_batch_norm", t0 + 45, t0 + 60)
    p.kernel(bn, "void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1>", t0 + 300, t0 + 400)
    back = p.op("aten::convolution_backward", t0 + 100, t0 + 150, thread=BACKWARD)
    p.kernel(back, "sm80_xmma_dgrad_implicit_gemm", t0 + 400, t0 + 600)
    sgd = p.op("aten::_fused_sgd_", t0 + 160, t0 + 170)
    p.kernel(sgd, "void at::native::(anonymous namespace)::fused_sgd_kernel", t0 + 550, t0 + 650)  # overlaps


def test_gpu_kernels_go_to_their_launching_op_and_idle_is_the_rest_of_the_wall_time():
    p = FakeProfile("cuda")
    _gpu_step(p, 0)
    _gpu_step(p, 1000)
    events = p.events()
    bd = categorize(events, n_steps=1, basis="cuda")
    assert bd.basis == "cuda" and bd.step_ms == pytest.approx(1.0)
    # kernel time by launching op; cuDNN's NCHW -> NHWC transpose is a layout conversion
    assert bd.ms == pytest.approx({"convolution": 0.4, "batch_norm": 0.1, "layout": 0.05, "optimizer": 0.1})
    # busy: 50..650 us, the union of the kernels (the annotation's GPU mirror is not device work)
    assert bd.idle_ms == pytest.approx(0.4)
    assert sum(bd.segments().values()) == pytest.approx(bd.step_ms + 0.05)  # + the 50 us two kernels overlapped
    assert bd.share("idle") == pytest.approx(0.4)
    assert bd.top[0].name.startswith("sm80_xmma_fprop") and bd.top[0].category == "convolution"


def test_a_breakdown_survives_its_dict_and_a_malformed_one_is_refused():
    bd = Breakdown(steps=3, basis="cuda", step_ms=10.0, ms={"convolution": 6.0, "layout": 1.0}, idle_ms=3.0,
                   top=[TopOp("k", "convolution", 6.0)], leading={"convolution": ["k"]}, seed=1)
    assert Breakdown.from_dict(bd.to_dict()) == bd
    with pytest.raises(ValueError, match="known categories"):
        Breakdown.from_dict({**bd.to_dict(), "ms": {"warp drive": 1.0}})
    with pytest.raises(ValueError, match="must be a dict"):
        Breakdown.from_dict([1, 2])


def test_trace_names_are_the_case_names():
    assert trace_name("test_precision[fp16]") == "test_precision[fp16].pt.trace.json"
    assert trace_name("test_x[a/b c]-seed1") == "test_x[a_b_c]-seed1.pt.trace.json"


def test_a_gpu_profile_without_kernels_is_an_error_not_an_idle_gpu():
    p = FakeProfile("cuda")
    _cpu_step(p, 0)  # CPU ops only: what the CUDA activity gives without CUPTI
    with pytest.raises(BreakdownError, match="no GPU kernels"):
        categorize(p.events(), n_steps=1, basis="cuda")

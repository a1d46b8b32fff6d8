"""The doctor's matmul rate at a size on the plateau (issue 19, item 9): the search with a
made-up rate curve, and the real measurement on this CPU at tiny sizes."""

from __future__ import annotations

import pytest
import torch

from speedtrain.doctor.diagnosis import PASS, matmul_verdict
from speedtrain.doctor.matmulpeak import describe, plateau_matmul, with_size

CPU = torch.device("cpu")


def curve(rates: dict[int, float], calls: list[int]):
    def measure(device, precision, n, target_s):
        calls.append(n)
        return rates[n]
    return measure


def test_doubles_until_a_doubling_gains_under_three_percent():
    calls: list[int] = []
    # 4096 is 10% below 8192 (the case); 16384 gains 1%: 8192 is on the plateau
    rates = {4096: 270e12, 8192: 300e12, 16384: 303e12}
    peak = plateau_matmul(CPU, "bf16", measure=curve(rates, calls))
    assert calls == [4096, 8192, 16384]
    assert peak.plateau and peak.n == 16384 and peak.flops == 303e12
    assert describe(peak) == "16384^3 (plateau)"


def test_stops_as_soon_as_the_plateau_is_seen():
    calls: list[int] = []
    peak = plateau_matmul(CPU, "fp16", measure=curve({4096: 300e12, 8192: 305e12, 16384: 1.0}, calls))
    assert calls == [4096, 8192] and peak.plateau and peak.n == 8192


def test_a_slow_gpu_stops_on_the_time_budget_and_says_so():
    calls: list[int] = []
    # fp32 on a T4-class GPU: 8192^3 takes 0.14 s a call, 16384^3 would take 1.1 s x 6 calls
    peak = plateau_matmul(CPU, "fp32", budget_s=4.0, measure=curve({4096: 6e12, 8192: 8e12, 16384: 8.1e12}, calls))
    assert calls == [4096, 8192]
    assert not peak.plateau and peak.n == 8192 and "budget" in (peak.stopped or "")
    assert "not shown to be the plateau" in describe(peak)


def test_memory_limits_the_size():
    calls: list[int] = []
    limit = 3 * 8192 * 8192 * 2  # bf16: 8192 fits, 16384 does not
    peak = plateau_matmul(CPU, "bf16", limit_bytes=limit, measure=curve({4096: 100e12, 8192: 200e12, 16384: 900e12}, calls))
    assert calls == [4096, 8192] and not peak.plateau and "does not fit" in (peak.stopped or "")
    with pytest.raises(RuntimeError, match="no matmul size fits"):
        plateau_matmul(CPU, "bf16", limit_bytes=1, measure=curve({4096: 1.0}, []))


def test_the_real_measurement_runs_on_this_cpu_and_the_check_carries_the_size():
    peak = plateau_matmul(CPU, "fp32", sizes=(32, 64, 128), target_s=0.01, budget_s=5.0)
    assert peak.n in (32, 64, 128) and peak.flops > 0 and set(peak.rates) <= {32, 64, 128}
    check = with_size(matmul_verdict("fp32", peak.flops, "NVIDIA A100-SXM4-80GB"), peak)
    assert check.data["n"] == peak.n and f"at {peak.n}^3" in check.reason and check.data["tflops_by_n"]
    assert check.status in (PASS, "WARN")

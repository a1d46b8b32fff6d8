"""The datasheet peak table: look-up by the names torch and NVML really report."""

import pytest

from speedtrain.hw.peaks import known_gpus, lookup_peak, peak_flops


@pytest.mark.parametrize("reported, row", [
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2"),
    ("Tesla V100-PCIE-16GB", "V100 PCIe"),
    ("Tesla V100S-PCIE-32GB", "V100S PCIe"),
    ("Tesla T4", "T4"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA A40", "A40"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA GeForce RTX 3090", "GeForce RTX 3090"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
    ("NVIDIA RTX A6000", "RTX A6000"),
    (b"Tesla T4".decode(), "T4"),
    ("nvidia  a100-sxm4-80gb", "A100"),  # case and spacing do not matter
])
def test_lookup_by_reported_name(reported, row):
    spec = lookup_peak(reported)
    assert spec is not None and spec.name == row
    assert spec.source.startswith("https://")


@pytest.mark.parametrize("reported", [
    "NVIDIA A10G",  # AWS part, not the A10
    "NVIDIA RTX A4000",  # not the A40
    "NVIDIA L20",  # another chip, not the L40, L40S or L4
    "NVIDIA B200",  # no per-GPU datasheet figures sourced (HGX/DGX print 8-GPU totals): no row, no MFU
    "NVIDIA H100 NVL",  # per-GPU figures not checked against the datasheet here: no row, no MFU
    "NVIDIA H200 NVL",
    "NVIDIA GeForce RTX 3090 Ti",
    "NVIDIA GeForce RTX 4090 D",
    "NVIDIA GeForce RTX 4090 Laptop GPU",
    "NVIDIA A100-SXM4-40GB MIG 1g.5gb",  # a slice has a fraction of the SMs
    "NVIDIA GH200 480GB",
    "Tesla V100-DGXS-32GB",  # form factor not settled by the name
    "cpu: AMD EPYC 7B13",
    "",
])
def test_unknown_or_ambiguous_names_have_no_peak(reported):
    assert lookup_peak(reported) is None
    assert peak_flops(reported, "bf16") is None


def test_peak_flops_units_and_precisions():
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp32") == pytest.approx(19.5e12)
    assert peak_flops("NVIDIA A100-SXM4-80GB", "tf32") == pytest.approx(156e12)
    assert peak_flops("NVIDIA A100-SXM4-80GB", "bf16") == pytest.approx(312e12)
    assert peak_flops("NVIDIA A100-SXM4-80GB", "half") == peak_flops("NVIDIA A100-SXM4-80GB", "fp16")
    # Dense, not "with sparsity": the H100 SXM datasheet prints 1,979 TFLOP/s for bf16.
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.5e12)
    # GeForce: fp16 with fp32 accumulation runs at half the fp16-accumulate rate.
    assert peak_flops("NVIDIA GeForce RTX 4090", "fp16") == pytest.approx(165.2e12)


def test_pre_ampere_gpus_have_no_tf32_or_bf16_peak():
    for name in ("Tesla V100-SXM2-16GB", "Tesla T4"):
        assert peak_flops(name, "tf32") is None and peak_flops(name, "bf16") is None
        assert peak_flops(name, "fp16") > 4 * peak_flops(name, "fp32")


def test_table_is_consistent():
    names = known_gpus()
    assert len(names) == len(set(names))
    for name in names:
        spec = lookup_peak(name)
        assert spec is not None and spec.name == name  # each row is reachable by its own name
        for tensor in (spec.tf32, spec.fp16, spec.bf16):
            assert tensor is None or tensor >= spec.fp32  # tensor cores never slower than CUDA cores
        if spec.bf16 is not None:
            assert spec.bf16 == spec.fp16


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="precision must be one of"):
        peak_flops("Tesla T4", "int8")


def test_matmul_format_of_each_precision():
    from speedtrain.hw.peaks import matmul_format

    assert [matmul_format(p) for p in ("fp32", "tf32", "fp16", "half", "bf16")] == ["fp32", "tf32", "fp16", "fp16", "bf16"]
    with pytest.raises(ValueError, match="precision must be one of"):
        matmul_format("fp8")


@pytest.mark.parametrize("reported, gb_per_s", [
    ("NVIDIA A100-SXM4-80GB", 2039.0), ("NVIDIA A100 80GB PCIe", 1935.0), ("Tesla V100-SXM2-16GB", 900.0),
    ("Tesla V100S-PCIE-32GB", 1134.0), ("NVIDIA L40", 864.0), ("NVIDIA H100 80GB HBM3", 3350.0),
    ("NVIDIA H100 NVL", 3900.0), ("NVIDIA H200 NVL", 4800.0), ("NVIDIA GeForce RTX 4090", 1008.0),
])
def test_bandwidth_by_reported_name(reported, gb_per_s):
    from speedtrain.hw.peaks import lookup_bandwidth

    spec = lookup_bandwidth(reported)
    assert spec is not None and spec.gb_per_s == gb_per_s and spec.source.startswith("https://")


@pytest.mark.parametrize("reported", ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB", "NVIDIA H100 PCIe",
                                      "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "NVIDIA GeForce RTX 4090 Laptop GPU",
                                      "NVIDIA B200", "Tesla V100-DGXS-32GB"])
def test_unsourced_bandwidth_is_none(reported):
    from speedtrain.hw.peaks import lookup_bandwidth

    assert lookup_bandwidth(reported) is None


def test_every_peak_row_with_a_bandwidth_cites_the_same_document():
    from speedtrain.hw.peaks import _BANDWIDTH, _TABLE

    sources = {spec.source for _, spec in _TABLE}
    assert all(spec.source in sources for _, spec in _BANDWIDTH)

"""Datasheet peak throughput of common NVIDIA GPUs, to put measured FLOP/s in proportion.

Every figure is the vendor's **dense** peak in TFLOP/s: NVIDIA's datasheets print tensor-core
figures "with sparsity" (2:4 structured sparsity, marked ``*``), which are twice the dense
ones, and dense training never reaches them, so those are halved here. ``fp16`` is the tensor
core rate with **fp32 accumulation**, which is what PyTorch's fp16 matmuls and convolutions
use; GeForce cards run that at half their fp16-accumulate rate (the architecture whitepapers
list both). ``tf32`` and ``bf16`` are None on GPUs without those tensor-core formats (before
Ampere, compute capability 8.0). Each row names the document its figures come from.

Look-up is by the name torch (``torch.cuda.get_device_name``) or NVML reports, e.g.
``"NVIDIA A100-SXM4-80GB"``, ``"Tesla V100-SXM2-16GB"``, ``"NVIDIA H100 80GB HBM3"``. A GPU not
in the table, or one whose form factor the name does not settle (a V100 that says neither
SXM2 nor PCIe), a laptop part or a MIG slice gets None: better no peak than a wrong one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class PeakSpec:
    name: str
    fp32: float  # TFLOP/s, CUDA cores (no tensor cores)
    tf32: Optional[float]  # TFLOP/s, tensor cores, dense
    fp16: float  # TFLOP/s, tensor cores with fp32 accumulation, dense
    bf16: Optional[float]  # TFLOP/s, tensor cores, dense
    source: str  # where the figures come from


_V100 = "https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf"
_T4 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf"
_A10 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/a10-datasheet.pdf"
_A100 = ("https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
         "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf")
_A40 = "https://images.nvidia.com/content/Solutions/data-center/a40/nvidia-a40-datasheet.pdf"
_L4 = "https://resources.nvidia.com/en-us-data-center-overview/l4-gpu-datasheet"
_L40S = "https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413"
_L40 = "https://images.nvidia.com/content/Solutions/data-center/vgpu-L40-datasheet.pdf"
_H100 = "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"
_H200 = "https://nvdam.widen.net/s/nb5zzzsjdf/hpc-datasheet-sc23-h200-datasheet-3002446"
_GA102 = "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf"
_ADA = "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"

# (pattern searched in the normalised name, spec). First match wins, so a more specific
# pattern (V100S, H100 PCIe) comes before a looser one. Word boundaries keep A10 from
# matching A100 or A10G (a different AWS part, not in the table).
_TABLE: tuple[tuple[str, PeakSpec], ...] = (
    (r"\bV100S\b", PeakSpec("V100S PCIe", 16.4, None, 130.0, None, _V100)),
    (r"\bV100\b.*\bSXM2\b", PeakSpec("V100 SXM2", 15.7, None, 125.0, None, _V100)),
    (r"\bV100\b.*\bPCIE\b", PeakSpec("V100 PCIe", 14.0, None, 112.0, None, _V100)),
    (r"\bT4\b", PeakSpec("T4", 8.1, None, 65.0, None, _T4)),
    (r"\bA10\b", PeakSpec("A10", 31.2, 62.5, 125.0, 125.0, _A10)),
    # All A100 variants (40/80 GB, PCIe/SXM4) share the same peaks; they differ in memory.
    (r"\bA100\b", PeakSpec("A100", 19.5, 156.0, 312.0, 312.0, _A100)),
    (r"\bA40\b", PeakSpec("A40", 37.4, 74.8, 149.7, 149.7, _A40)),
    (r"\bL4\b", PeakSpec("L4", 30.3, 60.0, 121.0, 121.0, _L4)),
    (r"\bL40S\b", PeakSpec("L40S", 91.6, 183.0, 362.05, 362.05, _L40S)),
    # L40 datasheet: FP32 90.5, TF32 90.5 | 181*, BF16 and FP16 (FP32 accumulate) 181.05 | 362.1*.
    (r"\bL40\b(?!S)", PeakSpec("L40", 90.5, 90.5, 181.05, 181.05, _L40)),
    (r"\bH100\b.*\bPCIE\b", PeakSpec("H100 PCIe", 51.0, 378.0, 756.5, 756.5, _H100)),
    (r"\bH100\b.*\b(SXM|HBM3)", PeakSpec("H100 SXM", 67.0, 494.5, 989.5, 989.5, _H100)),
    # H100 NVL and H200 NVL stay out (no MFU): their per-GPU tensor figures could not be checked
    # against the vendor's datasheet here, and third-party copies disagree (one revision printed
    # the NVLink pair's figures). An H200 NVL is kept off the H200 SXM row by the lookahead.
    (r"\bH200\b(?!.*\bNVL\b)", PeakSpec("H200 SXM", 67.0, 494.5, 989.5, 989.5, _H200)),
    (r"\bRTX 3090\b(?! TI)", PeakSpec("GeForce RTX 3090", 35.6, 35.6, 71.0, 71.0, _GA102)),
    (r"\bRTX A6000\b", PeakSpec("RTX A6000", 38.7, 77.4, 154.8, 154.8, _GA102)),
    (r"\bRTX 4090\b(?! D)", PeakSpec("GeForce RTX 4090", 82.6, 82.6, 165.2, 165.2, _ADA)),
)

# TrainConfig precisions to the column that bounds them ("half" runs fp16 tensor cores).
_COLUMN = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "half": "fp16", "bf16": "bf16"}


def _normalise(gpu_name: str) -> str:
    name = re.sub(r"[\s_]+", " ", gpu_name.upper()).strip()
    return re.sub(r"^(NVIDIA |TESLA |GEFORCE )+", "", name)


def lookup_peak(gpu_name: str) -> Optional[PeakSpec]:
    """The datasheet peaks of the GPU torch or NVML calls ``gpu_name``; None when unknown."""
    return _lookup(gpu_name, _TABLE)


def _lookup(gpu_name: str, table: list) -> Any:
    name = _normalise(gpu_name)
    # A laptop part shares a desktop name but not its clocks or chip; a MIG slice has a
    # fraction of the GPU's SMs. Neither has a datasheet figure of its own.
    if re.search(r"\b(LAPTOP|MOBILE|MAX-Q|MIG)\b", name):
        return None
    return next((spec for pattern, spec in table if re.search(pattern, name)), None)


def matmul_format(precision: str) -> str:
    """The number format a TrainConfig precision multiplies in (``half`` is fp16), as the
    datasheet columns and ``speedtrain doctor``'s matmul checks name it."""
    if precision not in _COLUMN:
        raise ValueError(f"precision must be one of {', '.join(_COLUMN)}; got {precision!r}")
    return _COLUMN[precision]


def peak_flops(gpu_name: str, precision: str) -> Optional[float]:
    """Dense peak FLOP/s for a TrainConfig precision (fp32, tf32, fp16, bf16, half) on this GPU;
    None when the GPU is unknown or has no tensor cores for that format."""
    column = matmul_format(precision)
    spec = lookup_peak(gpu_name)
    if spec is None:
        return None
    tflops = getattr(spec, column)
    return None if tflops is None else tflops * 1e12


@dataclass(frozen=True)
class BandwidthSpec:
    name: str
    gb_per_s: float  # datasheet memory bandwidth, GB/s (10^9 bytes per second)
    source: str


# Memory bandwidth, GB/s, as each row's document prints it. Apart from the peaks table because
# memory variants of one chip differ here (A100 40 GB / 80 GB PCIe / 80 GB SXM) and not in FLOPs;
# the A100 datasheet cited prints only the 80 GB parts, so the 40 GB parts have no row (no verdict).
_BANDWIDTH: tuple[tuple[str, BandwidthSpec], ...] = (
    (r"\bV100S\b", BandwidthSpec("V100S PCIe", 1134.0, _V100)),  # "1134 GB/sec"
    (r"\bV100\b.*\b(SXM2|PCIE)\b", BandwidthSpec("V100", 900.0, _V100)),  # "900 GB/sec", SXM2 and PCIe
    (r"\bT4\b", BandwidthSpec("T4", 320.0, _T4)),  # "320+ GB/s"
    (r"\bA10\b", BandwidthSpec("A10", 600.0, _A10)),  # "600 GB/s"
    (r"\bA100\b(?=.*\b80GB\b)(?=.*\bPCIE\b)", BandwidthSpec("A100 80GB PCIe", 1935.0, _A100)),  # "1,935 GB/s"
    (r"\bA100\b(?=.*\b80GB\b)(?=.*\bSXM4?\b)", BandwidthSpec("A100 80GB SXM", 2039.0, _A100)),  # "2,039 GB/s"
    (r"\bA40\b", BandwidthSpec("A40", 696.0, _A40)),  # "696 GB/s"
    (r"\bL4\b", BandwidthSpec("L4", 300.0, _L4)),  # "300GB/s"
    (r"\bL40S\b", BandwidthSpec("L40S", 864.0, _L40S)),  # "864GB/s"
    (r"\bL40\b(?!S)", BandwidthSpec("L40", 864.0, _L40)),  # "864GB/s"
    (r"\bH100\b.*\b(SXM|HBM3)", BandwidthSpec("H100 SXM", 3350.0, _H100)),  # "3.35TB/s"
    (r"\bH100\b.*\bNVL\b", BandwidthSpec("H100 NVL", 3900.0, _H100)),  # "3.9TB/s"
    (r"\bH200\b", BandwidthSpec("H200", 4800.0, _H200)),  # "4.8TB/s", SXM and NVL
    (r"\bRTX 3090\b(?! TI)", BandwidthSpec("GeForce RTX 3090", 936.0, _GA102)),  # "936 GB/sec"
    (r"\bRTX A6000\b", BandwidthSpec("RTX A6000", 768.0, _GA102)),  # "768 GB/sec"
    (r"\bRTX 4090\b(?! D)", BandwidthSpec("GeForce RTX 4090", 1008.0, _ADA)),  # "1008 GB/sec"
)


def lookup_bandwidth(gpu_name: str) -> Optional[BandwidthSpec]:
    """The datasheet memory bandwidth of the GPU torch or NVML calls ``gpu_name``; None when
    unknown, a laptop part or a MIG slice (the same exclusions as :func:`lookup_peak`)."""
    return _lookup(gpu_name, _BANDWIDTH)


def known_gpus() -> list[str]:
    """The table's GPU names, for messages about unknown GPUs."""
    return [spec.name for _, spec in _TABLE]

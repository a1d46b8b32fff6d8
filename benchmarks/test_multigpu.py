"""Data-parallel scaling: the myrtle.ai ResNet-9 recipe on 1, 2, 4 and 8 GPUs (DDP through
torchrun, the global batch kept at 512, so each GPU gets 512/N). Measured: throughput per GPU
count and the scaling efficiency, images/s on N GPUs over N times the 1-GPU case's (saved as
``scaling_efficiency`` in the case's extra_info). Cases needing more GPUs than the machine
shows are skipped with that reason; under ``-n`` (pytest-xdist) each worker sees one GPU, so
run this file without it."""

import pytest

from speedtrain import Section
from speedtrain.hw.device import visible_gpu_count

RECIPE = dict(model="resnet9", batch_size=512, epochs=24, lr=0.4, crop_padding=4, flip=True,
              cutout=8, channels_last=True, loader="gpu")

_one_gpu_images_per_s: dict[str, float] = {}  # the 1-GPU case's throughput, for the others' efficiency


SECTION = Section("Data-parallel scaling", parameter="GPUs (DDP processes)", unit="processes", order=145)


@pytest.mark.parametrize("nproc", [1, 2, 4, 8])
def test_multigpu(run_case, benchmark, nproc):
    gpus = visible_gpu_count()
    if nproc > 1 and gpus < nproc:
        pytest.skip(f"needs {nproc} GPUs, one per rank; this process sees {gpus}")
    record = run_case(nproc=nproc, **RECIPE)
    throughput = [x for x in record.images_per_s if x]
    if not throughput:
        return
    median = sorted(throughput)[(len(throughput) - 1) // 2]
    if nproc == 1:
        _one_gpu_images_per_s["median"] = median
    elif "median" in _one_gpu_images_per_s:
        benchmark.extra_info["scaling_efficiency"] = median / (nproc * _one_gpu_images_per_s["median"])

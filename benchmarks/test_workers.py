"""Data loading: a DataLoader augmenting on the CPU with 0-8 worker processes, beside the
dataset resident on the GPU and augmented there in bulk (myrtle.ai's "GPU preprocessing").
Measured: epoch time and throughput; the torch loader's time includes waiting for batches."""

import pytest

from speedtrain import Section


SECTION = Section("Data-loader workers", parameter="data loader (torch-N: DataLoader with N worker processes)", order=10)
REFERENCE = {"loader": "torch", "workers": 0}  # a DataLoader in the main process


@pytest.mark.parametrize("loader, workers", [
    pytest.param("torch", 0, id="torch-0"),
    pytest.param("torch", 1, id="torch-1"),
    pytest.param("torch", 2, id="torch-2"),
    pytest.param("torch", 4, id="torch-4"),
    pytest.param("torch", 8, id="torch-8"),
    pytest.param("gpu", 0, id="gpu-resident"),
])
def test_workers(run_case, loader, workers):
    run_case(loader=loader, workers=workers)

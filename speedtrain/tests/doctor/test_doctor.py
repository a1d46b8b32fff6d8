"""speedtrain doctor: its decisions with made-up inputs and fakes, and the command on this CPU."""

import json
import subprocess
import sys

import pytest
import torch

from speedtrain.data import augment
from speedtrain.hw import capability
from speedtrain.doctor import command as doctor
from speedtrain.doctor import microbench
from speedtrain.doctor.augcheck import check_gpu_loader
from speedtrain.cli.main import main
from speedtrain.doctor.diagnosis import (
    FAIL, PASS, SKIP, WARN, driver_compatibility, kernel_support, matmul_verdict, monitor_overhead,
    nvml_checks, parse_cuda_version, precision_check, timer_agreement, wheel_builds,
)
from speedtrain.hw.gpumonitor import probe_nvml
from speedtrain.tests.fake_nvml import FakeBox, FakeGpu, FakeMigDevice, FakeNvml, single_gpu_box, torch_props
from speedtrain.tests.conftest import ROOT

CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
BUILDS = {"12.6": {50, 60, 70, 75, 80, 86, 90}, "13.0": {75, 80, 86, 90, 100, 120}}
ALL_NAMES = ["versions", "driver vs torch build", "device", "kernels for this GPU", "precisions", "NVML device",
             "energy", "power readings", "clocks and power", "MIG", "timer vs wall clock", "matmul fp32", "matmul tf32",
             "matmul fp16", "matmul bf16", "memory bandwidth", "loader augmentation", "monitor overhead"]


# --- torch build and driver ----------------------------------------------------------------


@pytest.mark.parametrize("cap, kernel", [((8, 0), "sm_80"), ((8, 6), "sm_86"), ((8, 9), "sm_86"),
                                         ((9, 0), "sm_90"), ((7, 5), "sm_75"), ((12, 0), "sm_120")])
def test_cu130_build_runs_on_turing_and_newer(cap, kernel):
    check = kernel_support(cap, CU130, "GPU", "2.14.1+cu130", BUILDS)
    assert check.status == PASS and kernel in check.reason


def test_v100_on_the_cu130_wheel_fails_and_says_what_to_install():
    check = kernel_support((7, 0), CU130, "Tesla V100-SXM2-16GB", "2.14.1+cu130", BUILDS)
    assert check.status == FAIL
    assert "compute capability 7.0" in check.reason and "Tesla V100-SXM2-16GB" in check.reason
    assert "pip install torch==2.14.1 --index-url https://download.pytorch.org/whl/cu126" in check.reason


def test_this_venvs_wheel_has_no_volta_kernels():
    # The installed torch is the default cu130 wheel: what a V100 user gets from `pip install -e .`.
    if torch.version.cuda is None or not torch.cuda.get_arch_list():
        pytest.skip("not a CUDA build of torch")
    arch = torch.cuda.get_arch_list()
    expected = FAIL if not any(a in ("sm_70", "compute_70") for a in arch) else PASS
    assert kernel_support((7, 0), arch, "Tesla V100-PCIE-16GB", torch.__version__, wheel_builds()).status == expected


def test_ptx_only_is_a_warning_and_arch_specific_cubins_are_exact():
    assert kernel_support((9, 0), ["sm_80", "compute_80"], "H100", "2.14.1", BUILDS).status == WARN
    assert kernel_support((9, 0), ["sm_90a"], "H100", "2.14.1", BUILDS).status == PASS
    assert kernel_support((10, 0), ["sm_90a"], "B200", "2.14.1", {}).status == FAIL
    assert kernel_support((8, 0), [], "A100", "2.14.1", BUILDS).status == WARN


def test_no_build_fits_says_so():
    check = kernel_support((3, 5), CU130, "Tesla K80", "2.14.1+cu130", BUILDS)
    assert check.status == FAIL and "no published build" in check.reason


@pytest.mark.parametrize("value, parsed", [("13.0", (13, 0)), ("12.4.1", (12, 4)), (12040, (12, 4)),
                                           (13000, (13, 0)), (None, None), ("garbage", None)])
def test_parse_cuda_version(value, parsed):
    assert parse_cuda_version(value) == parsed


@pytest.mark.parametrize("driver_cuda, build, status", [
    ("13.0", "13.0", PASS), ("13.1", "13.0", PASS), (12040, "12.8", WARN), ("12.4", "13.0", FAIL),
    (None, "13.0", SKIP), ("12.4", None, SKIP),
])
def test_driver_compatibility(driver_cuda, build, status):
    assert driver_compatibility(driver_cuda, build, "550.54.15", BUILDS).status == status


def test_old_driver_with_cuda13_torch_says_which_wheel():
    check = driver_compatibility(12040, "13.0", "550.54.15", BUILDS)
    assert "driver 550.54.15 supports CUDA 12.4" in check.reason and "whl/cu126" in check.reason


# --- precisions, timer, matmul, monitor -----------------------------------------------------


@pytest.mark.parametrize("cap, base, status", [(None, "fp32", PASS), ((7, 0), "fp16", PASS), ((7, 5), "fp16", PASS),
                                               ((8, 0), "bf16", PASS), ((9, 0), "bf16", PASS), ((6, 0), "fp16", WARN)])
def test_precision_check_by_capability(cap, base, status):
    check = precision_check(cap)
    assert check.status == status and check.data["base_precision"] == base


def test_precision_check_reads_the_device_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    check = precision_check(capability.device_capability("cuda"))
    assert "bf16 convolutions no" in check.reason and "fp16 tensor cores yes" in check.reason
    assert check.data["base_precision"] == "fp16"


@pytest.mark.parametrize("timer_s, wall_s, status", [(1.0, 1.0, PASS), (0.99, 1.0, PASS), (1.0, 1.019, PASS),
                                                     (0.97, 1.0, FAIL), (1.03, 1.0, FAIL), (1.0, 0.0, FAIL)])
def test_timer_agreement(timer_s, wall_s, status):
    assert timer_agreement(timer_s, wall_s).status == status


def test_matmul_against_the_datasheet():
    a100 = "NVIDIA A100-SXM4-80GB"
    good = matmul_verdict("bf16", 250e12, a100)
    assert good.status == PASS and "80% of the A100 datasheet's 312" in good.reason
    assert good.data["source"].startswith("https://")
    assert matmul_verdict("bf16", 50e12, a100).status == WARN
    unknown = matmul_verdict("fp32", 10e12, "NVIDIA Imaginary 9000")
    assert unknown.status == PASS and "no datasheet peak known for 'NVIDIA Imaginary 9000'" in unknown.reason


@pytest.mark.parametrize("off, on, status", [([10.0, 10.02, 10.01, 10.03], [10.03, 10.05, 10.0, 10.04], PASS),
                                             ([10.0, 10.6, 9.9, 10.4], [10.5, 10.7, 9.8, 10.3], WARN),
                                             ([10.0, 10.02, 10.01, 10.03], [10.5, 10.6, 10.55, 10.52], FAIL)])
def test_monitor_overhead(off, on, status):
    assert monitor_overhead(off, on).status == status


# --- NVML, through the fake pynvml --------------------------------------------------------------


def _probe(box: FakeBox, monkeypatch, index: int = 0):
    box.install(monkeypatch)
    return probe_nvml(index, nvml=box.nvml)


def test_nvml_checks_on_a_plain_gpu(monkeypatch):
    checks = {c.name: c for c in nvml_checks(_probe(single_gpu_box(), monkeypatch))}
    assert checks["NVML device"].status == PASS and "telemetry reads this GPU" in checks["NVML device"].reason
    assert checks["energy"].status == PASS
    assert checks["clocks and power"].status == PASS and "power limit 400 W" in checks["clocks and power"].reason
    assert checks["MIG"].status == PASS


def test_nvml_checks_warn_without_energy_counter_and_when_throttled(monkeypatch):
    box = single_gpu_box(energy_counter=False, clocks_event_reasons=0x040 | 0x001)  # hw_thermal + idle
    checks = {c.name: c for c in nvml_checks(_probe(box, monkeypatch))}
    assert checks["energy"].status == WARN and "integrated from power" in checks["energy"].reason
    assert checks["clocks and power"].status == WARN and "hw_thermal" in checks["clocks and power"].reason


def test_nvml_checks_on_a_mig_slice(monkeypatch):
    mig = FakeMigDevice()
    gpu = FakeGpu(mig_capable=True, mig_devices=[mig])
    box = FakeBox(FakeNvml([gpu]), [torch_props(mig, parent=gpu)])
    checks = {c.name: c for c in nvml_checks(_probe(box, monkeypatch))}
    assert checks["NVML device"].status == PASS
    assert checks["MIG"].status == WARN and "whole GPU" in checks["MIG"].reason


def test_nvml_unavailable_is_a_warning_not_a_failure():
    class NoNvml:
        def nvmlInit(self):
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")
    checks = nvml_checks(probe_nvml(0, nvml=NoNvml()))
    assert [c.status for c in checks] == [WARN, SKIP, SKIP, SKIP, SKIP]


# --- the CUDA path of run_checks on a faked box ------------------------------------------------


def test_v100_box_fails_before_launching_any_kernel(monkeypatch, capsys):
    gpu = FakeGpu(name="Tesla V100-SXM2-16GB", mem_total=16 * 2**30)
    box = FakeBox(FakeNvml([gpu], cuda_driver_version=13000, driver_version="580.65.06"),
                  [torch_props(gpu, major=7, minor=0)]).install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CU130)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(doctor, "wheel_builds", lambda: BUILDS)

    def cudnn_version():  # what torch/backends/cudnn/__init__.py raises on its first call on a V100
        raise RuntimeError("cuDNN version 92400 is not compatible with devices with SM < 7.5. Please install ...")
    monkeypatch.setattr(torch.backends.cudnn, "version", cudnn_version)
    checks = {c.name: c for c in doctor.run_checks(torch.device("cuda"), nvml=box.nvml)}
    assert list(checks) == ALL_NAMES
    # torch's own cuDNN 9.24 refuses GPUs below compute capability 7.5: reported, not a crash.
    assert checks["versions"].status == FAIL and "SM < 7.5" in checks["versions"].reason
    assert checks["driver vs torch build"].status == PASS
    assert checks["kernels for this GPU"].status == FAIL and "whl/cu126" in checks["kernels for this GPU"].reason
    assert checks["precisions"].data["base_precision"] == "fp16"
    assert checks["NVML device"].status == PASS
    assert all(checks[n].status == SKIP for n in doctor.MEASURED_NAMES)


def test_a100_box_reaches_the_measurements(monkeypatch):
    box = single_gpu_box().install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CU130)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    seen = {}
    monkeypatch.setattr(doctor, "_measurements",
                        lambda device, cap, name, quick, log: seen.update(device=device, cap=cap, name=name) or [])
    checks = {c.name: c for c in doctor.run_checks(torch.device("cuda"), nvml=box.nvml)}
    assert checks["kernels for this GPU"].status == PASS
    assert checks["driver vs torch build"].status == FAIL  # the fake driver supports CUDA 12.4 only
    assert seen == {"device": torch.device("cuda", 0), "cap": (8, 0), "name": "NVIDIA A100-SXM4-80GB"}


def test_failed_measurement_is_a_fail_row_not_a_crash():
    def broken():
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nmore")
    check = doctor._guarded("matmul fp16", broken)
    assert check.status == FAIL and check.reason == "RuntimeError: CUDA error: no kernel image is available for execution on the device"


# --- measurements and the loader check, run on the CPU --------------------------------------------


def test_microbench_runs_on_cpu():
    cpu = torch.device("cpu")
    assert microbench.matmul_flops(cpu, "fp32", n=64, target_s=0.01) > 0
    assert microbench.copy_bandwidth(cpu, 1 << 20, target_s=0.01) > 0
    timer_s, wall_s = microbench.timer_against_wall(cpu, microbench.fixed_matmul_work(cpu, n=64, calls=5))
    assert 0 < timer_s <= wall_s
    assert not torch.backends.cuda.matmul.allow_tf32  # restored after the tf32 measurement
    microbench.matmul_flops(cpu, "tf32", n=32, target_s=0.01)
    assert not torch.backends.cuda.matmul.allow_tf32


def test_loader_check_passes_on_the_real_loader():
    report = check_gpu_loader(torch.device("cpu"), images=512, batch_size=128)
    assert report.problems == []
    assert report.top_offsets == list(range(9)) and 0.4 < report.flipped_fraction < 0.6
    assert report.full_cutouts > 0 and report.same_draw_fraction < 0.05


def test_loader_check_catches_a_loader_that_never_flips(monkeypatch):
    monkeypatch.setattr(augment, "random_flip", lambda images, generator: images)
    assert any("mirrored" in p for p in check_gpu_loader(torch.device("cpu"), images=512, batch_size=128).problems)


def test_loader_check_catches_a_wrong_cutout_size(monkeypatch):
    real = augment.cutout
    monkeypatch.setattr(augment, "cutout", lambda images, size, generator: real(images, size + 2, generator))
    problems = check_gpu_loader(torch.device("cpu"), images=512, batch_size=128).problems
    assert any("larger than 8x8" in p for p in problems)


def test_loader_check_catches_the_same_draw_every_epoch(monkeypatch):
    real = augment.random_crop
    monkeypatch.setattr(augment, "random_crop",
                        lambda images, size, generator: real(images, size, generator.manual_seed(7)))
    problems = check_gpu_loader(torch.device("cpu"), images=512, batch_size=128).problems
    assert any("same crop and flip in both epochs" in p for p in problems)


def test_loader_check_catches_a_crop_outside_the_padding(monkeypatch):
    real = augment.random_crop
    monkeypatch.setattr(augment, "random_crop",
                        lambda images, size, generator: real(images, size, generator).roll(1, dims=-1))
    problems = check_gpu_loader(torch.device("cpu"), images=512, batch_size=128).problems
    assert any("not a window" in p or "one crop" in p for p in problems)


# --- the command on this CPU ---------------------------------------------------------------


def test_doctor_command_on_cpu(tmp_path, capsys):
    path = tmp_path / "doctor.json"
    assert main(["doctor", "--device", "cpu", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["check", "status", "reason"]
    for name in ALL_NAMES:
        assert name in out
    assert "loader augmentation    PASS" in out
    saved = json.loads(path.read_text())
    assert saved["ok"] is True and saved["counts"]["FAIL"] == 0
    assert [c["name"] for c in saved["checks"]] == ALL_NAMES
    assert {c["status"] for c in saved["checks"]} <= {PASS, WARN, SKIP}


def test_doctor_asked_for_cuda_without_one_fails(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["doctor", "--device", "cuda"]) == 1
    out = capsys.readouterr().out
    assert "CUDA was asked for but torch sees no GPU" in out and "FAIL: do not trust" in out


@pytest.mark.slow
def test_doctor_as_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "speedtrain.cli", "doctor"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "doctor on cpu:" in done.stdout and "0 FAIL" in done.stdout


def test_matmul_peaks_are_the_measured_rates_only():
    """What the suite sets beside the datasheet MFU: the doctor's measured matmul rates, never a
    skipped check's (no TF32 before Ampere) nor a CPU's (matmul checks are skipped there)."""
    checks = [matmul_verdict("fp32", 14.5e12, "Tesla V100-SXM2-16GB"),
              matmul_verdict("fp16", 20e12, "Tesla V100-SXM2-16GB"),  # 16% of 125: a WARN, still measured
              doctor.Check("matmul tf32", SKIP, "no TF32 before compute capability 8.0"),
              timer_agreement(1.0, 1.0)]
    assert checks[1].status == WARN
    report = doctor.DoctorReport("cuda:0", 1.0, checks)
    assert report.matmul_peaks() == {"fp32": 14.5e12, "fp16": 20e12}
    assert doctor.run_doctor(torch.device("cpu"), quick=True).matmul_peaks() == {}

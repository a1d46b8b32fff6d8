"""Before the first case: the data the selected cases need, which cases will run, the estimate."""

import types


from speedtrain.recipes.profiles import suite_base
from speedtrain.suite.plan import case_dataset, session_estimate, will_run, worker_threads

BASE = {**suite_base("cpu"), "dataset": "cifar10", "data_dir": "data", "device": "auto"}


def test_a_files_dataset_is_what_its_selected_cases_need():
    item = types.SimpleNamespace(module=types.SimpleNamespace(DATASET="fashion-mnist"))
    assert case_dataset(item, "cifar10") == "fashion-mnist"
    assert case_dataset(types.SimpleNamespace(module=types.SimpleNamespace()), "cifar10") == "cifar10"


def test_the_image_size_file_declares_fashion_mnist():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "test_image_size.py"
    spec = importlib.util.spec_from_file_location("image_size_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DATASET == "fashion-mnist"


def test_cases_the_device_refuses_are_not_counted():
    assert will_run({"precision": "fp32"}, BASE, "cpu", 0) is None
    assert "tf32" in will_run({"precision": "tf32"}, BASE, "cpu", 0)
    assert "needs 2 GPUs" in will_run({"nproc": 2}, BASE, "cpu", 0)
    assert will_run({"nproc": 1}, BASE, "cpu", 0) is None
    assert will_run({"step": 3, "recipe": {"x": 1}}, BASE, "cpu", 0) is None  # not config fields: the case decides


def test_the_estimate_counts_what_runs_and_suggests_what_fits():
    assert session_estimate("smoke", "cpu", ["a"], 0) is None
    names = ["test_precision[fp32]", "test_precision[fp16]", "test_precision[bf16]", "test_precision[half]"]
    cpu = session_estimate("quick", "cpu", names, skipped=1)
    assert cpu.startswith("speedtrain: 4 cases of the quick profile take roughly 16 h 00 min on this cpu")
    assert "(1 more will be skipped on this device)" in cpu
    # a quick case alone is hours on a CPU: no -k subset fits, the smoke profile does
    assert "no selection of this profile fits in an hour: --st-profile smoke" in cpu and "-k" not in cpu
    many = [f"test_batch_size[{b}]" for b in range(100)]
    gpu = session_estimate("quick", "cuda", many, 0)
    assert "about 60 of them fit in an hour, e.g. -k '0 or 1 or 2'" in gpu
    assert session_estimate("quick", "cuda", many[:10], 0).endswith("on this cuda")  # 10 min: no advice


def test_xdist_workers_divide_the_cores_or_are_warned():
    assert worker_threads("cpu", None, 1, 2) == (None, None)  # serial: the physical cores (pin_threads)
    assert worker_threads("cpu", None, 2, 2) == (1, None)  # two workers on two cores: one thread each
    assert worker_threads("cpu", None, 2, 8) == (4, None)
    threads, warning = worker_threads("cpu", None, 4, 2)
    assert threads == 1 and "4 xdist workers share 2 physical cores" in warning and "use -n 2" in warning
    threads, warning = worker_threads("cpu", 2, 2, 2)  # the user's --st-threads is kept, with a warning
    assert threads == 2 and "2 xdist workers x 2 torch threads (--st-threads) exceed the 2 physical cores" in warning
    assert worker_threads("cuda", None, 2, 2) == (None, None)  # a GPU run's host threads feed its GPU

"""The GitHub Actions workflows parse, and their commands use options that exist.

A typo in a workflow (an option the plugin never registered, a step with neither ``run`` nor
``uses``) only shows on the GPU runner, hours later; these checks catch it on any machine.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PLUGIN = ROOT / "speedtrain" / "suite" / "plugin.py"
SCALEOUT = ROOT / "speedtrain" / "suite" / "scaleout.py"  # --st-gpus, --st-shard


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(workflow, dict), f"{name} is not a YAML mapping"
    return workflow


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    return {on: None} if isinstance(on, str) else {k: None for k in on} if isinstance(on, list) else on


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def commands(workflow: dict) -> list[str]:
    """Every shell command line of the workflow, with backslash continuations joined."""
    lines = []
    for step in steps(workflow):
        text = str(step.get("run", "")).replace("\\\n", " ")
        lines += [line.strip() for line in text.splitlines() if line.strip()]
    return lines


def registered(source: str, prefix: str) -> set[str]:
    return set(re.findall(rf"""["']({prefix}[a-z0-9-]+)["']""", source))


@pytest.fixture(scope="module")
def gpu() -> dict:
    return load("gpu-benchmarks.yml")


@pytest.fixture(scope="module")
def cpu() -> dict:
    return load("cpu-tests.yml")


@pytest.fixture(scope="module")
def record() -> dict:
    return load("record-baselines.yml")


GPU_WORKFLOWS = ["gpu-benchmarks.yml", "record-baselines.yml"]


@pytest.mark.parametrize("name", ["gpu-benchmarks.yml", "cpu-tests.yml", "record-baselines.yml"])
def test_jobs_exist_and_every_step_runs_or_uses(name: str) -> None:
    workflow = load(name)
    assert workflow.get("name")
    assert isinstance(workflow.get("jobs"), dict) and workflow["jobs"]
    for job_name, job in workflow["jobs"].items():
        assert job.get("runs-on"), f"{name}: job {job_name} has no runs-on"
        assert job.get("steps"), f"{name}: job {job_name} has no steps"
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{name}: step {step} needs exactly one of run / uses"


def test_gpu_job_runs_on_the_self_hosted_gpu_runner(gpu: dict) -> None:
    job = gpu["jobs"]["benchmarks"]
    labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
    assert {"self-hosted", "linux", "gpu", "${{ matrix.gpu }}"} <= set(labels)
    on = triggers(gpu)
    assert {"workflow_dispatch", "schedule", "push"} <= set(on)
    assert on["push"]["branches"] == ["main"]
    assert "SPEEDTRAIN_DATA_DIR" in job["env"]


def test_gpu_job_is_a_matrix_of_gpu_types_and_shards(gpu: dict) -> None:
    job = gpu["jobs"]["benchmarks"]
    matrix = job["strategy"]["matrix"]
    assert matrix["gpu"] and len(set(matrix["gpu"])) == len(matrix["gpu"])
    assert matrix["shard"] == list(range(1, len(matrix["shard"]) + 1))
    assert job["strategy"]["fail-fast"] is False  # one GPU type failing must not cancel the others
    pytest_line = next(line for line in commands({"jobs": {"b": job}}) if line.startswith("pytest benchmarks"))
    assert f"--st-shard ${{{{ matrix.shard }}}}/{len(matrix['shard'])}" in pytest_line
    assert "-n auto" in pytest_line  # one xdist worker per GPU of the runner


def test_gpu_job_commands(gpu: dict) -> None:
    lines = commands(gpu)
    pytest_line = next(line for line in lines if line.startswith("pytest benchmarks"))
    for option in ("--st-device cuda", "--st-profile quick", "--st-baselines check", "--st-fail-on-regression",
                   "--benchmark-save=ci-${{ github.run_number }}", "--benchmark-json=results/ci.json"):
        assert option in pytest_line
    # No baseline for this GPU is a failure, not a silent pass: per shard, and for the merged run.
    assert "speedtrain compare --baselines baselines.json results/ci.json --require-baselines" in lines
    assert "speedtrain compare --baselines baselines.json merged/all.json --require-baselines" in lines
    assert "speedtrain report results/ci.json -o reports/ci/REPORT.md --baselines baselines.json" in lines


def test_final_job_merges_compares_and_reports_per_gpu_model(gpu: dict) -> None:
    job = gpu["jobs"]["report"]
    assert job["needs"] == "benchmarks" and "cancelled()" in job["if"]
    download = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact@"))
    assert download["with"]["pattern"] == "gpu-benchmarks-${{ github.run_number }}-*"
    lines = commands({"jobs": {"r": job}})
    assert any(line.startswith("speedtrain merge ") and '-o "merged/$gpu.json"' in line for line in lines)
    assert "speedtrain merge merged/*.json -o merged/all.json" in lines
    assert any(line.startswith('speedtrain report "$run"') for line in lines)
    assert any('echo "## $model ($gpu)"' in line for line in lines)  # a section per GPU model
    assert any("GITHUB_STEP_SUMMARY" in line for line in lines)


@pytest.mark.parametrize("job_name, paths", [("benchmarks", {"reports/ci", "results/", ".benchmarks"}),
                                             ("report", {"reports/ci", "merged/"})])
def test_gpu_jobs_report_and_upload_even_after_a_failure(gpu: dict, job_name: str, paths: set) -> None:
    job = gpu["jobs"][job_name]
    first = next(i for i, s in enumerate(job["steps"])
                 if "pytest benchmarks" in s.get("run", "") or "speedtrain merge" in s.get("run", ""))
    after = job["steps"][first + 1:]
    assert after, "nothing runs after the benchmarks"
    for step in after:
        assert "cancelled()" in str(step.get("if", "")) or "always()" in str(step.get("if", "")), step
    upload = next(s for s in after if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert paths <= set(upload["with"]["path"].split())
    if ".benchmarks" in paths:  # upload-artifact v4.4+ leaves out hidden files unless told otherwise.
        assert upload["with"].get("include-hidden-files") is True


@pytest.mark.parametrize("name", GPU_WORKFLOWS)
def test_gpu_jobs_demand_a_gpu_and_check_it_first(name: str) -> None:
    """A GPU job must never fall back to the CPU (an old driver makes torch do exactly that)."""
    workflow = load(name)
    lines = commands(workflow)
    benchmarks = [i for i, line in enumerate(lines) if line.startswith("pytest benchmarks")]
    doctor = [i for i, line in enumerate(lines) if line.startswith("speedtrain doctor --device cuda")]
    assert benchmarks and doctor and doctor[0] < benchmarks[0], "doctor must gate the benchmarks"
    assert all("--st-device cuda" in lines[i] for i in benchmarks)
    # How to get a torch that matches the runner's driver is configurable, not hard-wired.
    assert any("--index-url \"$TORCH_INDEX_URL\"" in line for line in lines)


def test_record_baselines_workflow(record: dict) -> None:
    assert set(triggers(record)) == {"workflow_dispatch"}, "recording baselines is a manual decision"
    (job,) = record["jobs"].values()
    assert "gpu" in job["runs-on"]
    line = next(line for line in commands(record) if line.startswith("pytest benchmarks"))
    assert "--st-baselines update" in line
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert "baselines.json" in upload["with"]["path"].split()
    assert record["concurrency"]["group"] == load("gpu-benchmarks.yml")["concurrency"]["group"]


@pytest.mark.parametrize("name", GPU_WORKFLOWS)
def test_gpu_job_uses_only_registered_st_options(name: str) -> None:
    if not PLUGIN.exists():
        pytest.skip("speedtrain/suite/plugin.py not written yet")
    known = registered(PLUGIN.read_text() + SCALEOUT.read_text(), "--st-")
    assert known, "no --st- option found in the plugin: has the registration changed?"
    used = {opt for line in commands(load(name)) for opt in re.findall(r"--st-[a-z0-9-]+", line)}
    assert used and used <= known, f"unknown options: {sorted(used - known)}"


@pytest.mark.parametrize("name", GPU_WORKFLOWS)
def test_gpu_job_uses_only_real_benchmark_options(name: str) -> None:
    import pytest_benchmark.plugin

    known = registered(Path(pytest_benchmark.plugin.__file__).read_text(), "--benchmark-")
    used = {opt for line in commands(load(name)) for opt in re.findall(r"--benchmark-[a-z0-9-]+", line)}
    assert used and used <= known, f"unknown options: {sorted(used - known)}"


@pytest.mark.parametrize("name", GPU_WORKFLOWS)
def test_gpu_job_speedtrain_commands_parse(name: str) -> None:
    from speedtrain.cli.main import build_parser

    speedtrain_lines = [line for line in commands(load(name)) if line.startswith("speedtrain ")]
    assert len(speedtrain_lines) >= 2
    for line in speedtrain_lines:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"the speedtrain CLI refuses: {line}")


def test_cpu_job(cpu: dict) -> None:
    (job,) = cpu["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    setup = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.11"  # a string: YAML would read 3.10 as 3.1
    assert "bash .ci/run" in commands(cpu)

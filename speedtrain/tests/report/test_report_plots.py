"""What the report's tables and plots show: "1 seed", no CUDA lines on a CPU, no empty
columns, axes that name the parameter and its unit, an accuracy plot zoomed to the data,
bars grouped by case across runs, the smoke mark inside every image, the history trend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from speedtrain.records import baselines as bl
from speedtrain.report import plots
from speedtrain.records.record import CaseRecord
from speedtrain.report.markdown import build_report
from speedtrain.tests.report.test_report import _header, _table_row

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns

CPU = "cpu: AMD EPYC"


@pytest.fixture
def figures(monkeypatch) -> list[Any]:
    """The matplotlib figures the report draws, in order (not rendered to PNG)."""
    drawn: list[Any] = []
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or b"\x89PNG")
    return drawn


def by_title(figures: list[Any], words: str) -> Any:
    return next(f for f in figures if words in f.axes[0].get_title())


def cpu_run(fake_runs: "FakeRuns", **kw: Any) -> Path:
    cases = [fake_runs.bench("batch_size", "512", [8.0], reference=True, device=CPU, gpu=None, profile="smoke", **kw),
             fake_runs.bench("batch_size", "1024", [6.0], device=CPU, gpu=None, profile="smoke", **kw)]
    run = fake_runs.run(cases, profile="smoke", device=CPU)
    run["machine_info"]["speedtrain"].update(gpu=None, seeds=[0], cuda="13.0", cudnn=92400)
    return fake_runs.write("cpu.json", run)


def test_a_one_seed_cpu_run(fake_runs: "FakeRuns", tmp_path: Path, figures) -> None:
    text = Path(build_report([str(cpu_run(fake_runs))], str(tmp_path / "R.md"))).read_text()
    env = text.split("## Summary")[0]
    for row in ("| CUDA ", "| cuDNN ", "| GPU ", "| driver "):
        assert row not in env  # torch's CUDA build reports CUDA and cuDNN even on a CPU
    assert _table_row(text, "seeds")[1] == "0 (1 seed)"
    header = _header(text, "## Batch size")
    row = dict(zip(header, _table_row(text, "1024")))
    assert row["spread (min-max)"] == "1 seed"
    assert not {"energy J", "power W", "GPU util"} & set(header)  # no NVML figures on a CPU: no columns


def test_a_gpu_run_keeps_its_cuda_lines_and_figures(quick_run: Path, tmp_path: Path, figures) -> None:
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"))).read_text()
    assert _table_row(text, "CUDA")[1] == "12.4" and _table_row(text, "cuDNN")[1] == "90100"
    assert "energy J" in _header(text, "## Numeric precision")
    assert _table_row(text, "seeds")[1] == "0, 1, 2 (3 seeds)"


def test_every_plot_of_a_smoke_run_carries_the_mark(fake_runs: "FakeRuns", tmp_path: Path, figures) -> None:
    build_report([str(cpu_run(fake_runs))], str(tmp_path / "R.md"))
    assert len(figures) == 2
    for fig in figures:  # inside the axes, so it never covers the tick labels around them
        ax = fig.axes[0]
        (mark,) = [t for t in ax.texts if t.get_text() == plots.SMOKE_MARK]
        assert mark.get_transform() == ax.transAxes and mark.get_position() == (0.5, 0.5)
        assert not fig.texts


def test_a_measured_run_has_no_mark_and_axes_name_parameter_and_unit(quick_run: Path, tmp_path: Path, figures) -> None:
    build_report([str(quick_run)], str(tmp_path / "R.md"))
    assert figures and all(plots.SMOKE_MARK not in [t.get_text() for t in fig.axes[0].texts] for fig in figures)
    ax = by_title(figures, "Batch size: median training time").axes[0]
    assert ax.get_xlabel() == "batch size (images per step)" and ax.get_ylabel() == "training time per run (s)"
    ax = by_title(figures, "Batch size: test accuracy").axes[0]
    assert ax.get_xlabel().startswith("timed training time (s")


def test_the_accuracy_plot_zooms_to_the_data_and_keeps_the_target_in_range(fake_runs: "FakeRuns", tmp_path: Path,
                                                                       figures) -> None:
    # conftest curves: 0.7 x final after epoch 1 up to the final accuracy: 65.8% .. 94% for final 0.94
    reaching = fake_runs.bench("precision", "fp32", [10.0], reference=True)
    low = fake_runs.bench("batch_size", "512", [8.0], reference=True, curves=fake_runs.curves([8.0], final=0.5))
    build_report([str(fake_runs.write("r.json", fake_runs.run([reaching, low])))], str(tmp_path / "R.md"))
    ax = by_title(figures, "Numeric precision: test accuracy").axes[0]
    lo, hi = ax.get_ylim()
    assert 55 < lo < 65.8 and 94 <= hi < 100  # zoomed, not 0-100
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == [94.0]
    ax = by_title(figures, "Batch size: test accuracy").axes[0]
    assert ax.get_ylim()[1] < 60 and not [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert "target 94% above the data" in ax.get_title()


def test_several_runs_group_bars_by_case(fake_runs: "FakeRuns", quick_run: Path, tmp_path: Path, figures) -> None:
    other = fake_runs.write("other.json", fake_runs.run([fake_runs.bench("precision", "fp32", [12.0], reference=True),
                                                         fake_runs.bench("precision", "fp16", [3.0])]))
    build_report([str(quick_run), str(other)], str(tmp_path / "R.md"))
    ax = by_title(figures, "Numeric precision: median training time").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fp32\n(reference)", "fp16", "bf16"]
    bars = sorted(((p.get_x() + p.get_width() / 2, p.get_height()) for p in ax.patches))
    # fp32 of both runs sit around tick 0, fp16 of both around tick 1
    assert [round(x) for x, _ in bars][:4] == [0, 0, 1, 1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["quick", "other"]


def test_the_trend_plot_draws_the_recorded_history(fake_runs: "FakeRuns", quick_run: Path, tmp_path: Path,
                                                  figures) -> None:
    file = tmp_path / "baselines.json"
    bench = fake_runs.bench("precision", "fp16", [5.0, 5.2, 4.8])
    for i, scale in enumerate([1.2, 1.1, 1.0]):
        info = dict(bench["extra_info"], train_time_s=[t * scale for t in (5.0, 5.2, 4.8)])
        bl.update(file, "Tesla V100-SXM2-16GB", "quick", {"test_precision[fp16]": CaseRecord.from_extra_info(info)},
                  {"date": f"2024-04-0{i + 1}T00:00:00+00:00", "commit": f"{i}" * 12})
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"), baselines_path=str(file))).read_text()
    assert "(R-precision-trend.png)" in text and "R-batch_size-trend.png" not in text  # no history there
    ax = by_title(figures, "Numeric precision: stored baselines over time").axes[0]
    line, now = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert list(line.get_ydata()) == pytest.approx([6.0, 5.5, 5.0])
    # the reported run itself, hollow, after the stored updates
    assert list(now.get_xdata()) == [3] and list(now.get_ydata()) == pytest.approx([5.0]) and now.get_markerfacecolor() == "white"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2024-04-01\n0000000", "2024-04-02\n1111111",
                                                             "2024-04-03\n2222222", "this run"]
    assert ax.get_ylabel() == "median training time (s)"


def test_point_labels_of_a_crowded_spot_do_not_overlap():
    """Ladder steps often share a spot on the time-against-FLOPs plot (same work, about the same
    time): their names are moved apart instead of printed over each other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from speedtrain.report.plots import place_labels

    fig = Figure(figsize=(9, 4.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    xs, ys = [0.0103, 0.0103, 0.0103, 0.0103, 0.0055], [0.382, 0.380, 0.377, 0.36, 0.17]
    ax.scatter(xs, ys)
    ax.set_xscale("log")
    ax.set_yscale("log")
    labels = ["multicrop-tta", "alternating-flip-translate-2", "nesterov-decoupled-hyperparameters", "9.9-epochs", "x"]
    place_labels(ax, xs, ys, labels, ["k"] * 5)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text alone, not its leader line
    assert [t.get_text() for t in ax.texts] == labels
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_the_trend_plot_draws_with_one_stored_baseline_and_this_run(fake_runs: "FakeRuns", quick_run: Path,
                                                                    tmp_path: Path, figures) -> None:
    file = tmp_path / "baselines.json"
    bench = fake_runs.bench("precision", "fp16", [6.0, 6.2, 5.8])
    bl.update(file, "Tesla V100-SXM2-16GB", "quick", {"test_precision[fp16]": CaseRecord.from_extra_info(bench["extra_info"])},
              {"date": "2024-04-01T00:00:00+00:00", "commit": "0" * 12})
    build_report([str(quick_run)], str(tmp_path / "R.md"), baselines_path=str(file))
    ax = by_title(figures, "Numeric precision: stored baselines over time").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2024-04-01\n0000000", "this run"]


def test_the_flops_plot_of_one_shared_work_does_not_span_a_decade(fake_runs: "FakeRuns", tmp_path: Path,
                                                                 figures) -> None:
    cases = [fake_runs.bench("precision", p, [t], reference=p == "fp32", flops_per_image=2.27e9, train_flops=[2.71e15])
             for p, t in (("fp32", 10.0), ("fp16", 5.0), ("half", 4.0))]
    build_report([str(fake_runs.write("f.json", fake_runs.run(cases)))], str(tmp_path / "R.md"))
    ax = by_title(figures, "Numeric precision: time against work").axes[0]
    lo, hi = ax.get_xlim()
    assert lo < 2710 < hi and hi / lo < 2  # around the one value, not a decade of empty log axis


def test_accuracy_curves_of_different_cases_have_their_own_marker_and_dashes(quick_run: Path, tmp_path: Path,
                                                                            figures) -> None:
    build_report([str(quick_run)], str(tmp_path / "R.md"))
    ax = by_title(figures, "Numeric precision: test accuracy").axes[0]
    styles = {line.get_label(): (line.get_marker(), line.get_linestyle()) for line in ax.get_lines()
              if not line.get_label().startswith("_")}
    assert set(styles) == {"fp32", "fp16"} and styles["fp32"] != styles["fp16"]

"""speedtrain train's first lines: the header before the slow set-up, the GPU-recipe warnings."""

from speedtrain.cli.main import main
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.notice import GPU_SCALE_FLOPS, header, plural, slow_device_warnings, training_flops


def test_the_myrtle_recipe_on_a_cpu_is_gpu_scale():
    recipe = TrainConfig(precision="half", channels_last=True, epochs=24)
    assert training_flops(recipe) > GPU_SCALE_FLOPS
    warnings = slow_device_warnings(recipe, "cpu")
    assert len(warnings) == 3
    assert warnings[0].startswith("a GPU-scale run on a CPU: ") and "over 100 TFLOP counts as GPU-scale" in warnings[0]
    assert "--precision half is a GPU setting" in warnings[1] and "--channels-last" in warnings[2]
    assert slow_device_warnings(recipe, "cuda") == []  # on a GPU it is what it is for


def test_a_small_run_on_a_cpu_has_no_warning():
    small = TrainConfig(dataset="fashion-mnist", width=0.25, epochs=2, train_subset=5000)
    assert training_flops(small) < GPU_SCALE_FLOPS
    assert slow_device_warnings(small, "cpu") == []


def test_the_header_comes_before_the_data_is_read(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", "--data-dir", str(tmp_path / "empty"), "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith("speedtrain train: resnet9 width 1, 1 epoch, batch 512, fp32, on cpu, cifar10 from ")
    assert "reading the data and building the model first" in err[0]
    assert err[-1].startswith("error: no CIFAR-10 found")  # the slow part came after the header
    assert header(TrainConfig(synthetic=True), "cpu").endswith("on cpu, synthetic data; reading the data and "
                                                                "building the model first")


def test_plurals():
    assert [plural(1, "step"), plural(2, "step"), plural(9.9, "epoch")] == ["1 step", "2 steps", "9.9 epochs"]


def test_the_trainers_first_line_counts_one_step_as_one():
    from speedtrain.train.loop import train

    lines = []
    train(TrainConfig(synthetic=True, width=0.125, batch_size=8, train_subset=8, test_subset=16, epochs=1,
                      warmup_steps=1, device="cpu"), log=lines.append)
    assert ": 1 epoch x 1 step of 8, fp32" in lines[0], lines[0]

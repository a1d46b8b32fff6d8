"""The optimiser and regularisation grid of a CIFAR-10 course project (89.97% top-1 with a
ResNet-20 in 30 epochs): optimiser x batch size x learning rate x L2 on a ResNet-20 with a
step schedule, 45,000 / 5,000 train / validation images, the best epoch chosen on validation
and reported on test; then dropout alone at the reference point.

The whole grid (72 cases + 4 dropout cases) runs in the ``full`` profile; ``quick`` and
``smoke`` run a representative slice: each optimiser at its usual learning rate, plus SGD at
the largest batch. Measured: accuracy (the compared figure, ``final_acc``), top-2/3, the best
epoch, the confusion matrix, time; the report shows the study's table.
"""

import itertools


from speedtrain import Section

OPTIMIZERS = ("sgd", "adam", "adamw")
BATCHES = (32, 64, 256)
LRS = (0.1, 0.01, 0.001, 0.0001)
L2 = (1e-3, 1e-4)
DROPOUTS = (0.1, 0.3, 0.5, 0.7)
# The slice of quick and smoke: (optimiser, batch, lr, L2).
SLICE = [("sgd", 64, 0.1, 1e-4), ("adam", 64, 0.001, 1e-4), ("adamw", 64, 0.001, 1e-4), ("sgd", 256, 0.1, 1e-4)]
SECTIONS = {
    "optimizer_grid": Section("Optimiser grid (ResNet-20, accuracy study)", parameter="optimiser, batch, learning rate, L2", order=160),
    "optimizer_grid_dropout": Section("Dropout at the grid's reference point (ResNet-20, accuracy study)", parameter="dropout before the classifier", unit="fraction", order=170),
}
REFERENCE = {"optimizer_grid": {"optimizer": "sgd", "batch": 64, "lr": 0.1, "l2": 1e-4},
             "optimizer_grid_dropout": {"dropout": 0.1}}

# The study's network and schedule: ResNet-20, crop + flip, x0.1 after epochs 15 and 25 of 30.
STUDY = dict(model="resnet20", epochs=30, schedule="step", milestones=(15, 25), step_factor=0.1,
             momentum=0.9, nesterov=False, cutout=0, crop_padding=4, flip=True, dropout=0.1, target_acc=0.90)
VAL_IMAGES = 5000
SMOKE_VAL_IMAGES = 64  # smoke: a token validation set, so the path runs in a second


def _profile(config) -> str:
    from speedtrain.suite.plugin import STATE

    st = config.stash.get(STATE, None)
    return st.profile.name if st is not None else "smoke"


def pytest_generate_tests(metafunc):
    """The profile decides the cases: collected here, so quick and smoke list no skipped cases."""
    full = _profile(metafunc.config) == "full"
    if metafunc.function.__name__ == "test_optimizer_grid":
        grid = list(itertools.product(OPTIMIZERS, BATCHES, LRS, L2)) if full else SLICE
        metafunc.parametrize("optimizer, batch, lr, l2", grid,
                             ids=[f"{o}-b{b}-lr{lr:g}-l2{w:g}" for o, b, lr, w in grid])
    elif metafunc.function.__name__ == "test_optimizer_grid_dropout":
        dropouts = DROPOUTS if full else DROPOUTS[::3]
        metafunc.parametrize("dropout", dropouts, ids=[f"dropout{d:g}" for d in dropouts])


def _case(request, **changes):
    val = SMOKE_VAL_IMAGES if _profile(request.config) == "smoke" else VAL_IMAGES
    return {**STUDY, "val_split": val, **changes}


def test_optimizer_grid(run_case, request, optimizer, batch, lr, l2):
    run_case(metric="final_acc", **_case(request, optimizer=optimizer, batch_size=batch, lr=lr, weight_decay=l2))


def test_optimizer_grid_dropout(run_case, request, dropout):
    run_case(metric="final_acc", **_case(request, optimizer="sgd", batch_size=64, lr=0.1, weight_decay=1e-4,
                                         dropout=dropout))

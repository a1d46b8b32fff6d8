"""The datasets' shapes and default targets: facts a config is validated against anywhere,
without reading the data."""

# (channels, height, width, train images, test images, classes) of each dataset.
DATASET_SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    "cifar10": (3, 32, 32, 50_000, 10_000, 10),
    "fashion-mnist": (1, 28, 28, 60_000, 10_000, 10),
}
# Time-to-accuracy targets: 94% is DAWNBench's CIFAR-10 target; 93% for Fashion-MNIST is what
# a ResNet reaches in a few epochs in the student reports (state of the art is about 96%).
DEFAULT_TARGETS = {"cifar10": 0.94, "fashion-mnist": 0.93}

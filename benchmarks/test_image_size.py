"""Image size: Fashion-MNIST resized once to 24, 48, 72 and 96 px, ResNet-18 with the ImageNet
stem (the student reports). Measured: epoch time, throughput, accuracy."""

import pytest

from speedtrain import Section


SECTION = Section("Image size", parameter="image side", unit="pixels", order=30)
REFERENCE = {"image_size": 24}  # the smallest: the cost of larger images against it
DATASET = "fashion-mnist"  # what these cases train on: the check before the first case reads it


@pytest.mark.parametrize("image_size", [24, 48, 72, 96])
def test_image_size(run_case, image_size):
    run_case(dataset="fashion-mnist", model="resnet18", stem="imagenet", image_size=image_size,
             crop_padding=image_size // 8, cutout=0)

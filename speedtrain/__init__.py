"""speedtrain: a benchmark harness for training-speed optimisations (ResNet on CIFAR-10 / Fashion-MNIST)."""

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.records.section import Section
from speedtrain.common.errors import ConfigError, DataError, SpeedtrainError

__all__ = ["TrainConfig", "Section", "ConfigError", "DataError", "SpeedtrainError"]
__version__ = "0.1.0"

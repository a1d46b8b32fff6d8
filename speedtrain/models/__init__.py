"""The networks, registered by name (ResNet-9, ResNet-18, ResNet-20, airbench), on shared blocks.

Importing the package registers every built-in network (:mod:`speedtrain.models.registry`).
"""

from speedtrain.models import airbench, resnets  # noqa: F401 - each registers its networks

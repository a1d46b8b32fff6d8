"""The networks, registered by name (ResNet-9, ResNet-18, ResNet-20, airbench), on shared blocks."""

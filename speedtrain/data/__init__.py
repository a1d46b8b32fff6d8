"""Datasets (CIFAR-10, Fashion-MNIST), their decoding and caching, and the augmentation pipeline."""

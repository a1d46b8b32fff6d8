"""The `speedtrain` command (``speedtrain.cli.main:main`` dispatches): the training and doctor
commands in ``main``, the commands that read saved runs in ``results``."""

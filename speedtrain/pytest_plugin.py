"""The pytest entry point ``speedtrain.pytest_plugin``: named after this module, so that pytest,
pytest-xdist's workers and an older conftest's ``pytest_plugins = ["speedtrain.pytest_plugin"]``
all find the one plugin under one name. The plugin itself lives in :mod:`speedtrain.suite.plugin`."""

from speedtrain.suite.plugin import *  # noqa: F401,F403 - its hooks and pytest_plugins, registered here

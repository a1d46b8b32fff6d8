"""Root conftest: registers the speedtrain pytest plugin (options --st-*, fixture run_case)."""

pytest_plugins = ["speedtrain.pytest_plugin"]

"""``speedtrain.runs``, as before the move: saved runs now live in :mod:`speedtrain.records.runs`."""

from speedtrain.records.runs import *  # noqa: F401,F403 - the public surface of a notebook's import
from speedtrain.records.runs import to_dataframe  # noqa: F401 - named, as the README shows it

"""``python -m speedtrain.cli``: the ``speedtrain`` command without its console script."""

import sys

from speedtrain.cli.main import main

sys.exit(main())

"""``python -m hipdx``: the command line (:func:`hipdx.cli.main`), as the ``hipdx`` script."""

import sys

from hipdx.cli import main

sys.exit(main())

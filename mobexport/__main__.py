"""``python -m mobexport``: the same as the ``mobexport`` command."""

import sys

from mobexport.cli import main

sys.exit(main())

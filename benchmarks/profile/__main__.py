"""``python -m mobexport.benchmarks.profile``: the same as ``mobexport profile``."""

import sys

from mobexport.cli import main

sys.exit(main(["profile", *sys.argv[1:]]))

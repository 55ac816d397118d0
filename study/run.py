"""python -m study.run grid|map|asha|optuna|resume: Ray Tune studies of training stability.

The command line is study/cli.py; this module is its entry point.
"""

import os
import sys

from study.cli import main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    sys.exit(main())

"""Run every benchmark family: ``python -m benchmarks --help`` lists the options."""

from __future__ import annotations

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())

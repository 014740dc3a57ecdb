"""``python tests/tinymodel.py OUT.gguf``: the tiny test model, for scenarios that run it by path.

The generator lives in the package (``provision.lab.tinymodel``): the local lab serves it too.
"""

from __future__ import annotations

import sys

from provision.lab.tinymodel import main

if __name__ == "__main__":
    sys.exit(main())

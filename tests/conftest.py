"""Make the in-tree ``totem`` package importable when pytest runs from a checkout.

The package is not necessarily installed into the virtualenv; with pytest's
default ``prepend`` import mode only ``tests/`` itself lands on ``sys.path``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

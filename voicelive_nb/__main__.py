"""``python -m voicelive_nb``: versions, audio devices and the configured endpoint."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["info"]))

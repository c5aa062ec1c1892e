"""``python -m flows.cli ...`` (and ``torchrun ... -m flows.cli train ...`` for DDP)."""

import sys

from flows.cli import main

sys.exit(main())

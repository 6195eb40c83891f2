"""``python -m kvorum.ctl``: the same as the ``kvorumctl`` console script."""

from __future__ import annotations

import sys

from kvorum.ctl.main import main

sys.exit(main())

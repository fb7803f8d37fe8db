"""``python -m mikey_cli``: the ``mikey`` command."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())

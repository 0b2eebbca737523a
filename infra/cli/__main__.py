"""``python -m infra.cli``: the ``warden`` command from a checkout."""

import sys

from infra.cli import main

sys.exit(main())

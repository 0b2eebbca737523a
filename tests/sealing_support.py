"""What the sealing tests share: their clock, agent, destination and a fresh 32-byte share."""

from __future__ import annotations

import os
from datetime import datetime, timezone

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
AGENT = "agent-seal"
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def share32() -> bytearray:
    return bytearray(os.urandom(32))

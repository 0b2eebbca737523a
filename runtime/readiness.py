"""Ready files: each long-running process writes ``$WARDEN_HOME/run/<name>.ready`` once it is
consuming, so `warden up` and the test fixtures wait for real readiness, not a guess."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.config import Settings


def ready_file(settings: Settings, name: str) -> Path:
    return settings.home / "run" / f"{name}.ready"


def mark_ready(settings: Settings, name: str) -> None:
    path = ready_file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def clear_ready(settings: Settings, name: str) -> None:
    ready_file(settings, name).unlink(missing_ok=True)

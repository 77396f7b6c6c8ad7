"""Where artifacts live: one storage root, set by argument or the ``L2O_STORAGE`` environment variable."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORAGE = Path.home() / ".l2o" / "storage"


def storage_root(path: str | os.PathLike | None = None) -> Path:
    """The storage root: ``path`` if given, else ``$L2O_STORAGE``, else ``~/.l2o/storage``."""
    chosen = path or os.environ.get("L2O_STORAGE") or DEFAULT_STORAGE
    return Path(chosen).expanduser()

"""Where artifacts live: one storage root, set by argument or the ``L2O_STORAGE`` environment variable.

Every caller — the CLI, the Ray jobs, the REST service — reads the root through these two functions.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORAGE = Path.home() / ".l2o" / "storage"


def storage_root(path: str | os.PathLike | None = None) -> Path:
    """The storage root: ``path`` if given, else ``$L2O_STORAGE``, else ``~/.l2o/storage``."""
    chosen = path or os.environ.get("L2O_STORAGE") or DEFAULT_STORAGE
    return Path(chosen).expanduser()


def storage_uri(path: str | None = None) -> str:
    """The storage root as Ray wants it: a pyarrow URI (``s3://…``) as given, a path made absolute."""
    chosen = str(path or os.environ.get("L2O_STORAGE") or DEFAULT_STORAGE)
    return chosen if "://" in chosen else str(Path(chosen).expanduser().resolve())

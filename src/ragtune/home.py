"""ragtune's home folder: caches shared by every project on the machine (the dequantized model, for one).

``RAGTUNE_HOME`` overrides it, as ``LLM_USER_PATH`` does for simonw/llm.
"""

from __future__ import annotations

import os
from pathlib import Path


def ragtune_home() -> Path:
    """``$RAGTUNE_HOME``, else ``$XDG_CACHE_HOME/ragtune``, else ``~/.cache/ragtune``."""
    if os.environ.get("RAGTUNE_HOME"):
        return Path(os.environ["RAGTUNE_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ragtune"

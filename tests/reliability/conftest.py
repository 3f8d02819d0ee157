"""The reliability suite: fuzzing, leak, kill and forget checks that keep issue 12's promises.

Each check records how many cases it tried and how many held in ``$RAGTUNE_RELIABILITY_LOG`` (JSON lines) when
that variable is set; ``bench/reliability.py`` runs the suite with it and prints the table docs/reliability.md
keeps.
"""

from __future__ import annotations

import json
import os


def record(category: str, tried: int, held: int) -> None:
    """Append one check's counts to the reliability log (a no-op unless RAGTUNE_RELIABILITY_LOG is set)."""
    path = os.environ.get("RAGTUNE_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"category": category, "tried": tried, "held": held}) + "\n")

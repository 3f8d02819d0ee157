"""The project store: one SQLite file, changed only through numbered migrations."""

from ragtune.store.db import Store

__all__ = ["Store"]

"""A ragtune project: ``ragtune.toml`` plus the ``.ragtune/`` folder (store and indexes).

Commands find the project by walking up from the current folder, as git does, or take ``--project DIR``.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.config import CONFIG_FILE, Config, load_config, render_template
from ragtune.errors import ConfigError, ProjectNotFoundError
from ragtune.store import Store

if TYPE_CHECKING:
    from ragtune.generation.base import Generator
    from ragtune.index.embedder import Embedder
    from ragtune.index.index import Index

STATE_DIR = ".ragtune"
STORE_FILE = "ragtune.db"
INDEX_DIR = "index"


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding a ragtune.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ProjectNotFoundError(
        f"no {CONFIG_FILE} in {here} or any folder above it; run `ragtune init` or pass --project DIR"
    )


def init_project(folder: Path) -> tuple[Path, bool]:
    """Create ragtune.toml and .ragtune/ in ``folder``; returns (folder, created). Existing files are kept."""
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder; choose another path")
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / CONFIG_FILE
    created = not config_path.exists()
    if created:
        config_path.write_text(render_template(), encoding="utf-8")
    else:
        load_config(config_path)  # refuse to build on a broken configuration
    (folder / STATE_DIR / INDEX_DIR).mkdir(parents=True, exist_ok=True)
    Store(folder / STATE_DIR / STORE_FILE).close()
    return folder, created


class Project:
    """An opened project. Building one reads the config only; models and indexes load on first use.

    >>> project = Project.open()            # walks up from the current folder
    >>> project.search("rate limit", k=3)
    """

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root
        self.config = config
        self.state_dir = root / STATE_DIR
        self.index_dir = self.state_dir / INDEX_DIR
        self._interactive: tuple[Generator, Generator] | None = None  # (the batch generator, its interactive one)
        self._interactive_set: Generator | None = None
        self._embedder: Embedder | None = None
        self._generator: Generator | None = None

    @classmethod
    def open(cls, folder: Path | None = None) -> Project:
        if folder is None and os.environ.get("RAGTUNE_PROJECT"):
            folder = Path(os.environ["RAGTUNE_PROJECT"])
        if folder is not None and not folder.is_dir():
            raise ProjectNotFoundError(f"{folder}: no such folder; run `ragtune init {folder}` first")
        root = find_root(folder)
        config = load_config(root / CONFIG_FILE)
        if not (root / STATE_DIR).is_dir():
            (root / STATE_DIR / INDEX_DIR).mkdir(parents=True)
        return cls(root, config)

    @cached_property
    def store(self) -> Store:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        return Store(self.state_dir / STORE_FILE)

    @property
    def embedder(self) -> Embedder:
        """The embedder ``[embedder]`` names, built on first use; another may be put in its place."""
        if self._embedder is None:
            from ragtune.index.embedder import make_embedder

            self._embedder = make_embedder(self.config.embedder)
        return self._embedder

    @embedder.setter
    def embedder(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def generator(self) -> Generator:
        """The batch generator ``[generator]`` names, built on first use; another may be put in its place (a
        test's scripted model, an endpoint chosen at run time)."""
        if self._generator is None:
            from ragtune.generation.base import make_generator

            self._generator = make_generator(self.config.generator)
        return self._generator

    @generator.setter
    def generator(self, generator: Generator) -> None:
        self._generator = generator

    def loaded(self, part: str) -> bool:
        """Whether ``part`` (store, index, embedder or generator) has been built or set yet."""
        if part in ("embedder", "generator"):
            return getattr(self, f"_{part}") is not None
        if part in ("store", "index"):
            return part in self.__dict__
        raise ValueError(f"unknown project part {part!r}")

    @property
    def interactive_generator(self) -> Generator:
        """What answers one request at a time: ``[generator] interactive`` picks it (the batch generator, or a
        faster single-stream backend over the same weights). It follows the batch generator: one put in its
        place is used for both unless an interactive one is set too."""
        from ragtune.generation.base import make_interactive

        if self._interactive_set is not None:
            return self._interactive_set
        batch = self.generator
        if self._interactive is None or self._interactive[0] is not batch:
            self._interactive = (batch, make_interactive(self.config.generator, batch))
        return self._interactive[1]

    @interactive_generator.setter
    def interactive_generator(self, generator: Generator) -> None:
        self._interactive_set = generator

    @cached_property
    def index(self) -> Index:
        from ragtune.index.index import Index

        return Index.load(self.store, self.index_dir, self.config.retrieval)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

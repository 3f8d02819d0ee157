"""One path for extensions, the built-ins included: modules that register hooks when imported.

A plugin is a module that, on import, registers what it adds: a forget hook (``corpus.forget.FORGET_HOOKS``), a
lineage hook (``corpus.lineage.LINEAGE_HOOKS``), the resolver of fine-tuned models
(``generation.base.register_tuned``), a scorer, an arm. ragtune's own are loaded first, in the order below (the
model hooks read what the data set hooks wrote); then every module named in the ``ragtune.plugins`` entry-point
group of any installed package, sorted by entry-point name, as simonw/llm loads its default plugins::

    # a third party's pyproject.toml
    [project.entry-points."ragtune.plugins"]
    50-audit = "my_package.ragtune_audit"

Nothing here imports a plugin by name at module level, so a stage that runs hooks (corpus/forget.py) never
depends on the stages that register them (tuning/, harness/): the dependency points one way.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points

BUILTIN_PLUGINS: tuple[str, ...] = (
    "ragtune.tuning.lineage",  # data sets: forget removes examples, lineage lists them
    "ragtune.tuning.registry",  # model versions: tainting, weights, lineage, the tuned-model resolver
    "ragtune.harness.runs",  # eval results: forget redacts them (and a tainted fine-tune's)
    "ragtune.harness.cache",  # the generation cache: forget deletes the answers a document (or its fine-tune) shaped
)
GROUP = "ragtune.plugins"

# Model backends are a lighter tier of their own: building a generator or an embedder must not import the
# tuning and harness stages. Their modules register with generation.base.register_generator and
# index.embedder.register_embedder; third parties add theirs under the ``ragtune.backends`` group.
BUILTIN_BACKENDS: tuple[str, ...] = (
    "ragtune.generation.local",  # smollm2, transformers, llama-cpp
    "ragtune.generation.openai_backend",  # openai (generator)
    "ragtune.index.openai_embedder",  # openai (embedder); minilm and sentence-transformers are in index.embedder
)
BACKENDS_GROUP = "ragtune.backends"

_lock = threading.RLock()
_loaded: dict[str, list[str]] = {}


def _load(group: str, builtins: tuple[str, ...]) -> list[str]:
    with _lock:
        if group in _loaded:
            return list(_loaded[group])
        done: list[str] = []
        for name in builtins:
            importlib.import_module(name)
            done.append(name)
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            if ep.value not in done:
                importlib.import_module(ep.value)
                done.append(ep.value)
        _loaded[group] = done
        return list(done)


def load_plugins() -> list[str]:
    """Import the built-in plugins, then the installed ones, once per process; returns the modules loaded."""
    return _load(GROUP, BUILTIN_PLUGINS)


def load_backends() -> list[str]:
    """Import the built-in model backends, then the installed ones, once per process."""
    return _load(BACKENDS_GROUP, BUILTIN_BACKENDS)

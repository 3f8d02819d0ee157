"""ragtune: measure whether RAG or fine-tuning fixes your LLM feature.

The library API, exported on purpose::

    from ragtune import Project, Retriever, Filters
    project = Project.open("my-project")
    hits = Retriever(project.store, project.index, project.embedder, project.config.retrieval).search("...").hits
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Project": "ragtune.project",
    "init_project": "ragtune.project",
    "Config": "ragtune.config",
    "load_config": "ragtune.config",
    "Filters": "ragtune.index.index",
    "Retriever": "ragtune.retrieval.search",
    "Hit": "ragtune.retrieval.search",
    "ingest_paths": "ragtune.corpus.ingest",
    "ingest_documents": "ragtune.corpus.ingest",
    "Defaults": "ragtune.corpus.loaders",
    "RawDocument": "ragtune.corpus.model",
    "Rights": "ragtune.corpus.model",
    "forget": "ragtune.corpus.forget",
    "register_embedder": "ragtune.index.embedder",
    "register_fusion": "ragtune.retrieval.fusion",
    "register_reranker": "ragtune.retrieval.rerank",
    "build_dataset": "ragtune.tuning.data",
    "load_dataset": "ragtune.tuning.data",
    "document_lineage": "ragtune.corpus.lineage",
}

from ragtune.errors import (  # noqa: E402
    BenchmarkError,
    ConfigError,
    CorpusError,
    IngestError,
    ModelError,
    ProjectNotFoundError,
    RagtuneError,
    RetrievalError,
    StoreError,
    TuningError,
)

if TYPE_CHECKING:
    from ragtune.config import Config, load_config
    from ragtune.corpus.forget import forget
    from ragtune.corpus.ingest import ingest_documents, ingest_paths
    from ragtune.corpus.lineage import document_lineage
    from ragtune.corpus.loaders import Defaults
    from ragtune.corpus.model import RawDocument, Rights
    from ragtune.index.embedder import register_embedder
    from ragtune.index.index import Filters
    from ragtune.project import Project, init_project
    from ragtune.retrieval.fusion import register_fusion
    from ragtune.retrieval.rerank import register_reranker
    from ragtune.retrieval.search import Hit, Retriever
    from ragtune.tuning.data import build_dataset, load_dataset


def __getattr__(name: str) -> Any:
    # Lazy, so that `import ragtune` (and `ragtune --help`) stays cheap: numpy and models load on first use.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ragtune' has no attribute {name!r}")


__all__ = [
    "BenchmarkError",
    "Config",
    "ConfigError",
    "CorpusError",
    "Defaults",
    "Filters",
    "Hit",
    "IngestError",
    "ModelError",
    "Project",
    "ProjectNotFoundError",
    "RagtuneError",
    "RawDocument",
    "RetrievalError",
    "Retriever",
    "Rights",
    "StoreError",
    "TuningError",
    "__version__",
    "build_dataset",
    "document_lineage",
    "forget",
    "ingest_documents",
    "ingest_paths",
    "init_project",
    "load_config",
    "load_dataset",
    "register_embedder",
    "register_fusion",
    "register_reranker",
]

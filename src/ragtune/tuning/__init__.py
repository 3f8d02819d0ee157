"""Tuning: governed training data sets (and, beside them, LoRA training and the model registry).

report = build_dataset(project, "support-v1", cases=[Path("train.jsonl")], eval_cases=[Path("eval.jsonl")])
ds = load_dataset(project, "support-v1")        # ds.digest, ds.train, ds.holdout
"""

from ragtune.tuning import (
    lineage,  # noqa: F401  (registers the data set hooks of forget and lineage)
    registry,  # noqa: F401  (then the model hooks: they read what the data set hooks wrote)
)
from ragtune.tuning.data import (
    BuildReport,
    Dataset,
    Example,
    build_dataset,
    dataset_documents,
    list_datasets,
    load_dataset,
)

__all__ = [
    "BuildReport",
    "Dataset",
    "Example",
    "build_dataset",
    "dataset_documents",
    "list_datasets",
    "load_dataset",
]

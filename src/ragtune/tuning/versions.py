"""Training a registered model version from a data set: ``ragtune tune train`` (docs/tuning.md#training).

Training runs in a work folder named by a fingerprint of the data set digest, the base and the settings, so running
the same command again after a kill resumes from the last checkpoint; only a finished adapter becomes a version,
moved into ``.ragtune/models/VERSION/`` and registered in one step. A failure leaves the registry as it was::

    version = train_version(project, "support-fmt")          # -> ModelVersion v3
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import TuningError
from ragtune.store.registry import ModelVersion
from ragtune.tuning.data import load_dataset
from ragtune.tuning.registry import WORK_MARKER, next_version, register_version

if TYPE_CHECKING:
    from ragtune.project import Project
    from ragtune.tuning.train import TrainSettings


def models_dir(project: Project) -> Path:
    return project.root / ".ragtune" / "models"


def work_folder(project: Project, digest: str, base: str, settings: TrainSettings) -> Path:
    """Where a training run keeps its checkpoints: the same data, base and settings find the same folder."""
    key = json.dumps({"data": digest, "base": base, "settings": settings.model_dump()}, sort_keys=True)
    return models_dir(project) / f".train-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def train_version(
    project: Project,
    dataset: str,
    *,
    base: str | None = None,
    settings: TrainSettings | None = None,
    progress: bool = True,
    resume: bool = True,
) -> ModelVersion:
    """Train a LoRA adapter on data set ``dataset`` and register it as the next version."""
    from ragtune.tuning.train import TrainSettings, train_lora

    ds = load_dataset(project, dataset)
    if not ds.train:
        raise TuningError(f"data set {dataset!r} has no training examples; rebuild it with `ragtune tune data`")
    settings = settings or TrainSettings.from_config(project.config)
    base_name = base or "smollm2"
    work = work_folder(project, ds.digest, base_name, settings)
    work.mkdir(parents=True, exist_ok=True)
    # forget finds, by this digest, an unfinished run whose data it changes, and deletes its checkpoints
    (work / WORK_MARKER).write_text(json.dumps({"dataset": dataset, "digest": ds.digest}), encoding="utf-8")
    result = train_lora(
        [e.messages for e in ds.train],
        [e.messages for e in ds.holdout],
        settings,
        work,
        base=base,
        progress=progress,
        resume=resume,
    )
    store = project.store
    version = next_version(store)
    final = models_dir(project) / version
    if final.exists():  # left by a registration that failed after the move: nothing points to it
        shutil.rmtree(final)
    os.replace(work, final)
    record: dict[str, Any] = json.loads(json.dumps(asdict(result), default=str))
    record["adapter"] = str((final / "adapter").relative_to(project.root))
    try:
        return register_version(
            project,
            version=version,
            adapter=final / "adapter",
            base=base_name,
            dataset=ds,
            settings=settings.model_dump(),
            result=record,
        )
    except BaseException:
        os.replace(final, work)  # the registry is unchanged; the finished run stays where a retry finds it
        raise

"""Forget reaches fine-tunes: a version trained on the document loses its weights and is refused when asked for,
and an unfinished training run on the changed data set loses its checkpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ragtune.corpus.forget import forget
from ragtune.errors import TuningError
from ragtune.tuning.registry import WORK_MARKER, promote, resolve, tuned_generator
from ragtune.tuning.versions import models_dir
from tests.tuning.test_registry import registry, tiny_base  # noqa: F401  (fixtures)

pytest.importorskip("peft")


def test_forget_deletes_the_weights_and_stale_checkpoints(registry: Any) -> None:  # noqa: F811
    promote(registry, "v1", "production", force=True, reason="test")
    digest = json.loads(json.dumps(resolve(registry.store, "v1").dataset_digest))
    stale = models_dir(registry) / ".train-0123456789abcdef"
    (stale / "checkpoints" / "step-00000001").mkdir(parents=True)
    (stale / WORK_MARKER).write_text(json.dumps({"dataset": "fmt", "digest": digest}))
    other = models_dir(registry) / ".train-fedcba9876543210"
    other.mkdir()
    (other / WORK_MARKER).write_text(json.dumps({"dataset": "else", "digest": "0" * 64}))
    assert (registry.root / resolve(registry.store, "v1").adapter).is_dir()

    receipt = forget(registry, ["docs/pricing.md"]).to_json()

    assert receipt["totals"]["models_tainted"] == 2 and receipt["totals"]["training_runs_deleted"] == 1
    assert all(m["weights_deleted"] for m in receipt["models"])
    for v in ("v1", "v2"):
        assert not (registry.root / resolve(registry.store, v).adapter).exists()
    assert not stale.exists() and other.exists()
    with pytest.raises(TuningError, match="v1 is tainted: it was trained on forgotten data"):
        tuned_generator(registry, "production")

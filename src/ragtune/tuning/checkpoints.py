"""Resumable training checkpoints, written atomically.

A checkpoint is a folder ``out_dir/checkpoints/step-NNNNNNNN`` holding ``state.pt``: the LoRA weights, the
optimizer and scheduler states, every random generator's state, the step, the epoch's data order and the early
stopping record (best loss and best weights). It is written into a staging folder and renamed into place, so a run
killed at any moment leaves only whole checkpoints; the newest one is where a resumed run starts.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from ragtune.errors import TuningError

KEEP = 2  # the newest checkpoints kept; older ones are deleted once a newer one is in place
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_root(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Whole checkpoints, oldest first (staging folders are not listed)."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def save_checkpoint(out_dir: Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as the checkpoint of ``step``, atomically, and prune all but the newest ``KEEP``."""
    import torch

    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{step:08d}"
    staging = root / f".staging-{step:08d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        with open(staging / "state.pt", "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():  # a resumed run passing the same step again writes the same state
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise TuningError(f"{root}: cannot write a checkpoint ({exc.strerror or exc})") from None
    for old in list_checkpoints(out_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        state: dict[str, Any] = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, never resume from half a state
        raise TuningError(f"{path}: unreadable checkpoint ({exc}); delete it to resume from an older one") from None
    return state


def clear_checkpoints(out_dir: Path) -> None:
    shutil.rmtree(checkpoint_root(out_dir), ignore_errors=True)

"""The model registry: versions (base + adapter + the data set digest they learned from + settings and figures),
aliases with their full history, a promotion gate on the harness, rollback, and tainting on forget::

    v = register_version(project, adapter=folder, base="smollm2", dataset=load_dataset(project, "fmt"), ...)
    promote(project, v.version, "production")        # gated: must not regress the current production version
    rollback(project, "production")                  # back to the version it pointed to before

Versions are immutable; aliases move, and every move is a row of ``alias_history`` (who, when, why, and the
comparison the gate allowed it on). A version trained on a document that was later forgotten is *tainted*: it
stays listed (with the receipt that tainted it) but can never be promoted.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.corpus.forget import FORGET_HOOKS, ForgetContext
from ragtune.corpus.lineage import LINEAGE_HOOKS
from ragtune.errors import ModelAccessError, TuningError
from ragtune.generation.base import register_tuned
from ragtune.store.db import Store, utcnow
from ragtune.store.registry import (
    ModelVersion,
    aliases_of,
    docs_of,
    mark_tainted,
    registry_store,
    version_row,
    versions_trained_on,
)
from ragtune.tuning.data import dataset_documents, groups_needed, may_use
from ragtune.tuning.release import Gate as Gate
from ragtune.tuning.release import gate

if TYPE_CHECKING:
    from ragtune.generation.base import Generator
    from ragtune.project import Project
    from ragtune.tuning.data import Dataset

_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^v[0-9]+$")


def who() -> str:
    """The person (or CI job) moving an alias: ``RAGTUNE_USER``, else the login name."""
    name = os.environ.get("RAGTUNE_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid-{os.getuid()}"


def _with_access(store: Store, version: ModelVersion) -> ModelVersion:
    """``version`` with the groups a caller needs to use it now (see access_groups)."""
    return replace(version, groups=access_groups(store, version.version, version.groups))


def access_groups(store: Store, version: str, recorded: list[list[str]]) -> list[list[str]]:
    """Who may use ``version``: the audiences recorded at training, and the current groups of every document its
    data came from (a document restricted after training restricts the model too)."""
    current = _document_groups(store, registry_store(store).version_docs(version))
    return groups_needed([set(a) for a in recorded] + current)


def _document_groups(store: Store, doc_ids: list[str]) -> list[set[str]]:
    """The current groups of each of ``doc_ids`` that is still stored (a read of the corpus's documents table)."""
    out = []
    for doc_id in doc_ids:
        row = store.db.execute("SELECT groups FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is not None:
            out.append(set(json.loads(row[0])))
    return out


def list_versions(store: Store) -> list[ModelVersion]:
    return [_with_access(store, v) for v in registry_store(store).versions()]


def get_version(store: Store, version: str) -> ModelVersion | None:
    found = registry_store(store).version(version)
    return None if found is None else _with_access(store, found)


def alias_target(store: Store, alias: str) -> str | None:
    return registry_store(store).alias_target(alias)


def resolve(store: Store, ref: str, caller_groups: Sequence[str] | None = None) -> ModelVersion:
    """The version named ``ref``: a version (v3) or an alias (production).

    With ``caller_groups``, a version trained on documents the caller may not read (see ModelVersion.groups) is
    answered exactly as an unknown one, and the versions the error lists are those the caller may use."""
    version = ref if _VERSION.match(ref) else alias_target(store, ref)
    found = get_version(store, version) if version else None
    hidden = found is not None and caller_groups is not None and not may_use(found.groups, caller_groups)
    if found is None or hidden:
        visible = [v for v in list_versions(store) if caller_groups is None or may_use(v.groups, caller_groups)]
        known = [v.version for v in visible][-5:]
        aliases = sorted(a for v in visible for a in v.aliases)
        hint = (f"versions: {', '.join(known)}" + (f"; aliases: {', '.join(aliases)}" if aliases else "")
                if known else "no model versions yet: `ragtune tune train --data NAME` makes one")  # fmt: skip
        raise (ModelAccessError if hidden else TuningError)(f"no model version or alias {ref!r} ({hint})")
    assert found is not None
    return found


def next_version(store: Store) -> str:
    return registry_store(store).next_version()


def register_version(
    project: Project,
    *,
    version: str,
    adapter: Path,
    base: str,
    dataset: Dataset,
    settings: dict[str, Any],
    result: dict[str, Any],
) -> ModelVersion:
    """Record a trained adapter (already in its final folder under the project) as ``version``, in one transaction,
    with the documents its training data came from (ids only), so that lineage survives the data set's changes."""
    store = project.store
    try:
        rel = adapter.resolve().relative_to(project.root.resolve())
    except ValueError:
        raise TuningError(f"{adapter}: adapters are kept inside the project folder") from None
    docs = sorted(dataset_documents(store, dataset.name))
    row = {"version": version, "created_at": utcnow(), "created_by": who(), "base": base, "adapter": str(rel),
           "dataset": dataset.name, "dataset_digest": dataset.digest, "settings": json.dumps(settings),
           "result": json.dumps(result, default=str), "groups": json.dumps(dataset.groups)}  # fmt: skip
    registry_store(store).add_version(row, docs)
    found = get_version(store, version)
    assert found is not None
    return found


# aliases -------------------------------------------------------------------------------------------------------


def alias_history(store: Store, alias: str | None = None) -> list[dict[str, Any]]:
    """Every move of ``alias`` (or of every alias), oldest first."""
    return registry_store(store).alias_history(alias)


def promote(
    project: Project,
    ref: str,
    alias: str,
    *,
    run: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Point ``alias`` at version ``ref`` if the gate allows it (or ``force`` with a ``reason``, recorded)."""
    if not _ALIAS.match(alias) or _VERSION.match(alias):
        raise TuningError(f"alias {alias!r}: use a name such as production or candidate (not a version like v3)")
    store = project.store
    version = resolve(store, ref)
    if version.tainted:
        raise TuningError(
            f"{version.version} is tainted: it was trained on forgotten data ({version.tainted.get('receipt')}); "
            f"retrain without it: {version.tainted.get('retrain')}"
        )
    current = alias_target(store, alias)
    if current == version.version:
        raise TuningError(f"{alias} already points to {current}")
    if force and not (reason and reason.strip()):
        raise TuningError("--force needs --reason: say why the gate is overridden (it is recorded)")
    result = gate(project, version.version, current, run)
    if not result.ok and not force:
        raise TuningError(
            f"promotion of {version.version} to {alias} refused: " + "; ".join(result.reasons)
            + " (override with --force --reason TEXT)"
        )  # fmt: skip
    entry = _move(store, alias, version.version, current, "promote", force and not result.ok, reason, asdict(result))
    return entry | {"gate": asdict(result)}


def rollback(project: Project, alias: str) -> dict[str, Any]:
    """Point ``alias`` back at the version it pointed to before its current one (walking back past tainted ones)."""
    store = project.store
    current = alias_target(store, alias)
    if current is None:
        raise TuningError(f"no alias {alias!r}; `ragtune tune promote VERSION --alias {alias}` creates it")
    history = alias_history(store, alias)
    # the versions the alias held, newest first, each once, without the current one
    held = list(dict.fromkeys(h["version"] for h in reversed(history) if h["action"] == "promote"))
    targets = [v for v in held if v != current]
    for target in targets:
        found = get_version(store, target)
        if found is not None and not found.tainted:
            return _move(store, alias, target, current, "rollback", False, None, {})
    raise TuningError(f"{alias} has no earlier untainted version to roll back to (it points to {current})")


def _move(
    store: Store, alias: str, version: str, previous: str | None, action: str, forced: bool, reason: str | None,
    gate_info: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    at, by = utcnow(), who()
    registry_store(store).move_alias(
        {"alias": alias, "version": version, "previous": previous, "action": action, "forced": int(forced),
         "reason": reason, "gate": json.dumps(gate_info, default=str), "by": by, "at": at}
    )  # fmt: skip
    return {"alias": alias, "version": version, "previous": previous, "action": action, "forced": forced,
            "reason": reason, "by": by, "at": at}  # fmt: skip


# serving -------------------------------------------------------------------------------------------------------

_GENERATORS: dict[tuple[str, str], Generator] = {}


def tuned_generator(project: Project, ref: str, caller_groups: Sequence[str] | None = None) -> Generator:
    """The generator of model version ``ref`` (version or alias): its base with its adapter merged, loaded once
    per process and version (building it loads nothing; the first generation does).

    With ``caller_groups`` (a caller's: ``ask``, the server), a version trained on documents the caller may not
    read is refused as if unknown; None is the project's operator (``eval``), who may use every version."""
    from ragtune.generation.base import make_generator

    version = resolve(project.store, ref, caller_groups)
    if version.tainted:
        raise TuningError(
            f"{version.version} is tainted: it was trained on forgotten data ({version.tainted.get('receipt')}) and "
            f"its weights were deleted; retrain without it: {version.tainted.get('retrain')}"
        )
    folder = version.adapter_path(project.root)
    if not (folder / "adapter_config.json").is_file():
        raise TuningError(
            f"{version.version}: its adapter folder {folder} is missing; retrain it or restore the folder"
        )
    key = (str(project.root), version.version)
    if key not in _GENERATORS:
        section = project.config.generator
        if version.base == "smollm2":
            section = section.model_copy(update={"backend": "smollm2", "model": "", "adapter": str(folder)})
        else:
            section = section.model_copy(update={"backend": "transformers", "model": version.base, "adapter": str(folder)})  # fmt: skip
        _GENERATORS[key] = make_generator(section)
    return _GENERATORS[key]


# forgetting and lineage ----------------------------------------------------------------------------------------


def taint_models(ctx: ForgetContext) -> None:
    """Mark every version trained on a forgotten document as tainted (never promotable again) and list each, with
    the command that retrains it without the forgotten data, in the receipt."""
    db, ids = ctx.db, ctx.doc_ids
    if not ids:
        return
    versions = versions_trained_on(db, ids)
    listed = []
    for v in sorted(versions, key=lambda x: int(x[1:])):
        row = version_row(db, v)
        docs = sorted(d for d in docs_of(db, v) if d in ids)
        retrain = f"ragtune tune train --data {row[0]}" + ("" if row[1] == "smollm2" else f" --base {row[1]}")
        why = {"receipt": ctx.receipt.receipt_id, "documents": docs, "at": utcnow(), "retrain": retrain}
        if not row[3]:
            mark_tainted(db, v, why)
        aliases = aliases_of(db, v)
        adapter = version_row(db, v)[4]
        folder = ctx.project.root / adapter
        # the weights learned the forgotten text: they go, and the version can no longer be served
        ctx.after_commit.append(partial(_delete_weights, ctx.project, v, folder))
        listed.append(
            {"version": v, "aliases": aliases, "documents": docs, "retrain": retrain, "weights_deleted": adapter}
        )
    # unfinished training runs on a data set forget just changed: their checkpoints learned the forgotten text too
    old_digests = {d["old_digest"] for d in ctx.receipt.sections.get("datasets", []) if d.get("old_digest")}
    stale = [w for w in _work_folders(ctx.project) if _work_digest(w) in old_digests]
    for work in stale:
        ctx.after_commit.append(partial(shutil.rmtree, work, ignore_errors=True))
    ctx.receipt.sections["models"] = listed
    ctx.receipt.totals["models_tainted"] = len(listed)
    ctx.receipt.totals["training_runs_deleted"] = len(stale)


def _delete_weights(project: Project, version: str, folder: Path) -> None:
    _GENERATORS.pop((str(project.root), version), None)
    shutil.rmtree(folder, ignore_errors=True)


WORK_MARKER = "dataset.json"
"""Written into a training run's work folder: which data set (name and digest) its checkpoints learn from."""


def _work_folders(project: Project) -> list[Path]:
    root = project.root / ".ragtune" / "models"
    return sorted(p for p in root.glob(".train-*") if p.is_dir()) if root.is_dir() else []


def _work_digest(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / WORK_MARKER).read_text(encoding="utf-8"))["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_lineage(project: Project, doc_id: str, out: dict[str, Any]) -> None:
    rows = registry_store(project.store).trained_on(doc_id)
    out["models"] = [
        {"version": r[0], "dataset": r[1], "dataset_digest": r[2], "tainted": bool(r[3]),
         "groups": access_groups(project.store, r[0], json.loads(r[4])),
         "aliases": aliases_of(project.store.db, r[0])}
        for r in rows
    ]  # fmt: skip


FORGET_HOOKS.append(taint_models)
LINEAGE_HOOKS.append(model_lineage)

register_tuned(tuned_generator)

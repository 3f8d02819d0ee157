"""ragtune ingest, forget, docs, receipts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, err_console, json_option, open_project, progress_bar, project_option
from ragtune.corpus.forget import forget, list_receipts
from ragtune.corpus.ingest import describe_right, ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.corpus.model import parse_groups, parse_when
from ragtune.errors import CorpusError


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--source", help="Source name (default: the folder's name). --sync works per source.")
@click.option(
    "--license", "license_", help="Licence of these documents, e.g. CC-BY-4.0 (new documents: from ragtune.toml)."
)
@click.option(
    "--training/--no-training",
    "may_train",
    default=None,
    help="Whether these documents may be used for training (new documents: yes). --training on a known "
    "document that forbids it needs --rights-change.",
)
@click.option(
    "--retrieval/--no-retrieval",
    "may_retrieve",
    default=None,
    help="Whether these documents may be retrieved (new documents: yes; --no-retrieval keeps them for lineage only).",
)
@click.option(
    "--groups",
    help="Comma-separated access groups; only searches made with one of them see these documents. "
    "--groups '' makes them public (a loosening: needs --rights-change on known documents).",
)
@click.option("--owner", help="Who owns these documents (a team or a person).")
@click.option("--valid-from", help="When this content became valid (YYYY-MM-DD or ISO datetime; default: now).")
@click.option("--sync", is_flag=True, help="Retire documents of the source that are no longer among PATHS.")
@click.option(
    "--rights-change",
    is_flag=True,
    help="Allow loosening the rights of known documents (dropping groups, allowing training or retrieval, "
    "changing or clearing a licence). Without it a re-ingest keeps what it does not name, and only tightens.",
)
@project_option
@json_option
def ingest_cmd(
    paths: tuple[Path, ...],
    source: str | None,
    license_: str | None,
    may_train: bool | None,
    may_retrieve: bool | None,
    groups: str | None,
    owner: str | None,
    valid_from: str | None,
    sync: bool,
    rights_change: bool,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Ingest Markdown, text, HTML and JSONL files; unchanged documents are skipped, changed ones get a new version.

    Rights stick: a re-ingest that names no rights keeps each known document's stored rights, groups, licence and
    owner; naming tighter ones applies them; looser ones need --rights-change. Every change is listed.

    Returns once every change is searchable. Bad files are reported one line each; the rest still ingests and the
    exit code is 1.
    """
    project = open_project(project_dir)
    if valid_from is not None and not valid_from.strip():
        raise CorpusError("--valid-from is empty; give a date (YYYY-MM-DD) or leave the option out")
    defaults = Defaults(
        source=source,
        license=license_,
        may_retrieve=may_retrieve,
        may_train=may_train,
        groups=None if groups is None else parse_groups(groups),
        owner=owner,
        valid_from=parse_when(valid_from) if valid_from else None,
        default_license=project.config.corpus.default_license,
    )
    with progress_bar("ingesting documents", enabled=not as_json) as advance:
        report = ingest_paths(project, list(paths), defaults, sync=sync, rights_change=rights_change, progress=advance)
    if as_json:
        emit_json(report.to_json())
    else:
        for err in report.errors:
            err_console.print(f"[red]error[/red]: {err['message']}", markup=True, highlight=False)
        for entry in report.rights_changed:
            changes = "; ".join(
                f"{k} {describe_right(k, v['old'])} -> {describe_right(k, v['new'])}"
                for k, v in entry["changes"].items()
            )
            console.print(f"rights changed: {entry['doc_id']}: {changes}")
        console.print(
            f"ingested {len(report.added)} new, {len(report.updated)} changed (new version), "
            f"{len(report.unchanged)} unchanged, {len(report.metadata_changed)} with new rights or metadata, "
            f"{len(report.retired)} retired; {report.chunks} chunks in {report.seconds:.2f}s"
            + (f"; {len(report.errors)} failed" if report.errors else "")
            + (f"; {len(report.skipped_files)} files of other types skipped" if report.skipped_files else "")
        )
    if not report.ok:
        sys.exit(1)


@click.command("forget")
@click.argument("doc_ids", nargs=-1)
@click.option("--source", help="Forget every document of this source.")
@project_option
@json_option
def forget_cmd(doc_ids: tuple[str, ...], source: str | None, project_dir: Path | None, as_json: bool) -> None:
    """Remove documents everywhere: every version and chunk, from the store and both indexes, physically.

    Prints a receipt (also stored; see `ragtune receipts`).
    """
    if not doc_ids and not source:
        raise CorpusError("nothing to forget; give document ids or --source NAME")
    project = open_project(project_dir)
    receipt = forget(project, list(doc_ids), source)
    if as_json:
        emit_json(receipt.to_json())
    else:
        t = receipt.totals
        console.print(
            f"receipt {receipt.receipt_id} ({receipt.created_at}): forgot {t['documents']} documents, "
            f"{t['versions']} versions, {t['chunks']} chunks, {t.get('traces', 0)} traces, "
            f"{t.get('dataset_examples', 0)} training examples, {t.get('run_results_redacted', 0)} eval results "
            f"redacted in {t.get('runs', 0)} runs; rewrote {receipt.segments_rewritten} index segments "
            f"in {receipt.seconds:.2f}s"
        )
        for doc in receipt.documents:
            console.print(f"  {doc['doc_id']} ({doc['source']}): {doc['versions']} versions, {doc['chunks']} chunks")
        for ds in receipt.sections.get("datasets", []):
            console.print(
                f"  data set {ds['name']}: removed {ds['removed']} examples; digest {ds['old_digest'][:12]} → "
                f"{ds['new_digest'][:12]}"
            )
        for key, entries in receipt.sections.items():  # what other hooks recorded (model versions, ...)
            if key != "datasets":
                for entry in entries:
                    console.print(f"  {key}: " + "  ".join(f"{k}={v}" for k, v in entry.items()))
        for missing in receipt.not_found:
            err_console.print(f"error: {missing}: no such document; see `ragtune docs list`")
    if not receipt.ok:
        sys.exit(1)


@click.command("receipts")
@project_option
@json_option
def receipts_cmd(project_dir: Path | None, as_json: bool) -> None:
    """List the stored deletion receipts."""
    receipts = list_receipts(open_project(project_dir).store)
    if as_json:
        emit_json({"receipts": receipts})
        return
    for r in receipts:
        console.print(f"{r['receipt_id']}  {r['created_at']}  {r['totals']}  {[d['doc_id'] for d in r['documents']]}")


@click.group("docs")
def docs_group() -> None:
    """Inspect the corpus: documents, their versions, rights and groups."""


@docs_group.command("list")
@click.option("--source", help="Only this source.")
@project_option
@json_option
def docs_list(source: str | None, project_dir: Path | None, as_json: bool) -> None:
    """List documents with their current version, rights and status."""
    store = open_project(project_dir).store
    rows = store.db.execute(
        "SELECT d.*, (SELECT MAX(version) FROM versions v WHERE v.doc_id = d.doc_id) AS versions, "
        "(SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.doc_id) AS chunks FROM documents d "
        + ("WHERE d.source = ? " if source else "")
        + "ORDER BY d.doc_id",
        (source,) if source else (),
    ).fetchall()
    docs = [
        {
            "doc_id": r["doc_id"],
            "source": r["source"],
            "status": r["status"],
            "versions": r["versions"],
            "chunks": r["chunks"],
            "license": r["license"],
            "may_retrieve": bool(r["may_retrieve"]),
            "may_train": bool(r["may_train"]),
            "groups": json.loads(r["groups"]),
            "owner": r["owner"],
        }
        for r in rows
    ]
    if as_json:
        emit_json({"documents": docs})
        return
    from rich.table import Table

    table = Table("doc_id", "source", "status", "v", "chunks", "licence", "train", "groups", "owner")
    for column in table.columns:
        column.overflow = "fold"  # ids are what users copy into `forget`: never cut them with an ellipsis
    table.columns[0].min_width = min(60, max((len(d["doc_id"]) for d in docs), default=6))
    for d in docs:
        table.add_row(
            d["doc_id"],
            d["source"],
            d["status"],
            str(d["versions"]),
            str(d["chunks"]),
            d["license"],
            "yes" if d["may_train"] else "no",
            ",".join(d["groups"]) or "public",
            d["owner"] or "-",
        )
    console.print(table)


@docs_group.command("show")
@click.argument("doc_id")
@project_option
@json_option
def docs_show(doc_id: str, project_dir: Path | None, as_json: bool) -> None:
    """Show one document's versions with their validity dates."""
    store = open_project(project_dir).store
    doc = store.db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
    if doc is None:
        raise CorpusError(f"{doc_id}: no such document; see `ragtune docs list`")
    versions = [
        {
            "version": v["version"],
            "valid_from": v["valid_from"],
            "valid_to": v["valid_to"],
            "content_hash": v["content_hash"],
            "title": v["title"],
            "chars": v["chars"],
            "chunks": v["chunks"],
        }
        for v in store.db.execute(
            "SELECT v.*, length(v.text) AS chars, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = v.doc_id AND "
            "c.version = v.version) AS chunks FROM versions v WHERE doc_id = ? ORDER BY version",
            (doc_id,),
        )
    ]
    data = dict(zip(doc.keys(), doc, strict=True)) | {
        "groups": json.loads(doc["groups"]),
        "extra": json.loads(doc["extra"]),
        "may_retrieve": bool(doc["may_retrieve"]),
        "may_train": bool(doc["may_train"]),
        "versions": versions,
    }
    if as_json:
        emit_json(data)
        return
    console.print(
        f"{doc_id}  source={doc['source']}  status={doc['status']}  licence={doc['license']}  "
        f"train={'yes' if doc['may_train'] else 'no'}  groups={','.join(data['groups']) or 'public'}"
    )
    for v in versions:
        console.print(
            f"  v{v['version']}  {v['valid_from']} → {v['valid_to'] or 'current'}  {v['chunks']} chunks  "
            f"{v['content_hash'][:12]}"
        )


@click.command("reindex")
@project_option
@json_option
def reindex_cmd(project_dir: Path | None, as_json: bool) -> None:
    """Rebuild the keyword and vector indexes from the store (after changing the embedder in ragtune.toml)."""
    from ragtune.corpus.reindex import reindex

    project = open_project(project_dir)
    with progress_bar("re-embedding chunks", enabled=not as_json) as advance:
        result = reindex(project, progress=advance)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"rebuilt {result['chunks']} chunks into {result['segments']} segments with "
            f"{result['embedder']} in {result['seconds']:.1f}s"
        )


def register(cli: click.Group) -> None:
    cli.add_command(reindex_cmd)
    cli.add_command(ingest_cmd)
    cli.add_command(forget_cmd)
    cli.add_command(receipts_cmd)
    cli.add_command(docs_group)

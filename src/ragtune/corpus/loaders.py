"""Reading files into documents: Markdown, plain text, HTML and JSONL.

Each bad input becomes an :class:`IngestError` naming the file (and line) and what to do; it never stops the rest
of the batch. HTML is turned into Markdown-like text, so that chunking sees its headings the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragtune.corpus.model import RIGHTS_FIELDS, RawDocument, Rights, parse_groups, parse_when
from ragtune.errors import CorpusError, IngestError

MARKDOWN = {".md", ".markdown"}
TEXT = {".txt", ".text"}
HTML = {".html", ".htm"}
JSONL = {".jsonl"}
SUPPORTED = MARKDOWN | TEXT | HTML | JSONL
SUPPORTED_TEXT = ", ".join(sorted(SUPPORTED))


@dataclass
class Defaults:
    """Rights and dates given on the command line, applied where a document does not say otherwise.

    A right left ``None`` was not asked for: a document already in the corpus keeps what is stored for it, and a
    new one gets the fallback (``default_license``, retrievable, trainable, public, no owner).
    """

    source: str | None = None
    license: str | None = None
    may_retrieve: bool | None = None
    may_train: bool | None = None
    groups: tuple[str, ...] | None = None
    owner: str | None = None
    valid_from: datetime | None = None
    default_license: str = "unspecified"  # a new document's licence when none is given


@dataclass
class ReadResult:
    documents: list[RawDocument] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files of other types met while walking a folder


class JsonlMetadata(BaseModel):
    """The ``metadata`` of a JSONL document: the same fields as the ingest flags."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    license: str | None = None
    owner: str | None = None
    groups: list[str] | str | None = None
    no_training: bool | None = None
    may_train: bool | None = None
    no_retrieval: bool | None = None
    may_retrieve: bool | None = None
    valid_from: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class JsonlRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str
    title: str | None = None
    metadata: JsonlMetadata = Field(default_factory=JsonlMetadata)

    @field_validator("id")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


def default_source(path: Path) -> str:
    """A folder's name, or a file's parent folder's name: ``docs/`` and ``docs/a.md`` share a source."""
    folder = path if path.is_dir() else path.parent
    return folder.resolve().name or "default"


def document_id(path: Path, arg: Path, root: Path) -> str:
    """A file's stable id: its path relative to the project folder, else relative to the folder given."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        pass
    if arg.is_dir():
        return (Path(arg.resolve().name) / resolved.relative_to(arg.resolve())).as_posix()
    return resolved.name


def _walk(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .git, .ragtune, editor files
        if path.is_file():
            yield path


def read_paths(paths: list[Path], defaults: Defaults, root: Path, max_bytes: int) -> ReadResult:
    """Read every supported file under ``paths``; bad inputs become errors, the rest documents."""
    result = ReadResult()
    result.documents = list(iter_documents(paths, defaults, root, max_bytes, result))
    return result


def iter_documents(
    paths: list[Path], defaults: Defaults, root: Path, max_bytes: int, result: ReadResult
) -> Iterator[RawDocument]:
    """Documents one file at a time, so a large corpus never sits in memory whole; errors and skipped files go to
    ``result`` as they are met."""
    seen: dict[str, str] = {}
    for arg in paths:
        if not arg.exists():
            result.errors.append(IngestError(str(arg), "no such file or folder", "check the path"))
            continue
        source = defaults.source or default_source(arg)
        files = list(_walk(arg)) if arg.is_dir() else [arg]
        for path in files:
            if path.suffix.lower() not in SUPPORTED:
                if arg.is_dir():
                    result.skipped.append(str(path))
                else:
                    result.errors.append(
                        IngestError(
                            str(path), f"unsupported file type '{path.suffix}'", f"ragtune reads {SUPPORTED_TEXT}"
                        )
                    )
                continue
            for item in _read_file(path, arg, root, source, defaults, max_bytes):
                if isinstance(item, IngestError):
                    result.errors.append(item)
                elif item.doc_id in seen:
                    result.errors.append(
                        IngestError(
                            item.where,
                            f"duplicate document id {item.doc_id!r} (also in {seen[item.doc_id]})",
                            "give each document its own id",
                            path=item.path,
                        )
                    )
                else:
                    seen[item.doc_id] = item.where
                    yield item


def _read_text(path: Path, max_bytes: int) -> str:
    where = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise IngestError(
                where,
                f"{size / 1e6:.3g} MB is over the {max_bytes / 1e6:g} MB limit",
                "split the file or raise corpus.max_file_mb in ragtune.toml",
            )
        data = path.read_bytes()
    except PermissionError:
        raise IngestError(where, "permission denied", "make the file readable (chmod +r) or leave it out") from None
    except IsADirectoryError:
        raise IngestError(where, "is a folder", "pass the folder itself") from None
    except OSError as exc:
        raise IngestError(where, f"cannot read ({exc.strerror})", "check the file") from None
    if b"\x00" in data[:8192]:
        raise IngestError(where, "looks like a binary file", f"ragtune reads text files ({SUPPORTED_TEXT})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            where,
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            "convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8`",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_file(
    path: Path, arg: Path, root: Path, source: str, defaults: Defaults, max_bytes: int
) -> Iterator[RawDocument | IngestError]:
    try:
        text = _read_text(path, max_bytes)
    except IngestError as err:
        yield err
        return
    suffix = path.suffix.lower()
    if suffix in JSONL:
        yield from _read_jsonl(path, text, source, defaults)
        return
    if suffix in HTML:
        title, body = html_to_text(text)
        title = title or path.stem
    elif suffix in MARKDOWN:
        title, body = markdown_title(text) or path.stem, text
    else:
        title, body = path.stem, text
    if not body.strip():
        yield IngestError(str(path), "empty document (no text to index)", "add content or remove the file")
        return
    yield RawDocument(
        doc_id=document_id(path, arg, root),
        title=title,
        text=body,
        rights=_rights(defaults, source),
        where=str(path),
        path=str(path.resolve()),
        valid_from=defaults.valid_from,
        given=_given(defaults),
    )


def markdown_title(text: str) -> str | None:
    """The first level-1 heading outside fenced code, if any."""
    from ragtune.corpus.chunking import FENCE, HEADING

    in_fence = False
    for line in text.split("\n"):
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match and len(match.group(1)) == 1:
            return match.group(2).strip()
    return None


def _given(defaults: Defaults) -> frozenset[str]:
    """The rights the command line (or the API) asked for; the others keep a known document's stored ones."""
    return frozenset(f for f in RIGHTS_FIELDS if getattr(defaults, f) is not None)


def _rights(defaults: Defaults, source: str) -> Rights:
    return Rights(
        source=source,
        license=defaults.default_license if defaults.license is None else defaults.license,
        may_retrieve=True if defaults.may_retrieve is None else defaults.may_retrieve,
        may_train=True if defaults.may_train is None else defaults.may_train,
        groups=() if defaults.groups is None else defaults.groups,
        owner=defaults.owner,
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "line"
    if err["type"] == "extra_forbidden":
        if key.startswith("metadata."):
            allowed = ", ".join(JsonlMetadata.model_fields)
            return f"unknown field '{key}' (metadata takes {allowed}; put free-form fields under metadata.extra)"
        return f"unknown field '{key}'"
    if err["type"] == "missing":
        return f"missing field '{key}'"
    return f"field '{key}': {err['msg']}"


def _flag(allowed: bool | None, denied: bool | None, default: bool | None) -> bool | None:
    """``may_x`` / ``no_x`` of a JSONL line: either one names the right (``no_x: true`` wins over ``may_x``)."""
    if denied:
        return False
    if allowed is not None:
        return allowed
    if denied is not None:
        return True  # "no_training": false says training is allowed
    return default


def _read_jsonl(path: Path, text: str, source: str, defaults: Defaults) -> Iterator[RawDocument | IngestError]:
    fix = 'each line must be {"id": str, "text": str, "title"?: str, "metadata"?: {...}}'
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        err = partial(IngestError, where, path=str(path))
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield err(f"not valid JSON ({exc.msg} at column {exc.colno})", "fix or remove the line")
            continue
        try:
            record = JsonlRecord.model_validate(data)
        except ValidationError as exc:
            yield err(_first_error(exc), fix)
            continue
        if not record.text.strip():
            yield err(f"empty document {record.id!r} (no text)", "add text or remove the line")
            continue
        meta = record.metadata
        try:
            valid_from = parse_when(meta.valid_from) if meta.valid_from else defaults.valid_from
            groups = parse_groups(meta.groups) if meta.groups is not None else defaults.groups
        except CorpusError as exc:
            yield err(str(exc), "fix the metadata")
            continue
        # a line's metadata overrides the command line's flags; what neither names keeps the stored rights
        named = Defaults(
            license=meta.license or defaults.license,
            may_retrieve=_flag(meta.may_retrieve, meta.no_retrieval, defaults.may_retrieve),
            may_train=_flag(meta.may_train, meta.no_training, defaults.may_train),
            groups=groups,
            owner=meta.owner or defaults.owner,
            default_license=defaults.default_license,
        )
        rights = _rights(named, meta.source or source)
        yield RawDocument(
            doc_id=record.id,
            title=(record.title or record.id).strip(),
            text=record.text.replace("\r\n", "\n"),
            rights=rights,
            where=where,
            path=str(path.resolve()),
            valid_from=valid_from,
            extra=meta.extra,
            given=_given(named),
        )


_BLOCK_TAGS = {"p", "div", "section", "article", "blockquote", "pre", "li", "tr", "dt", "dd", "figcaption", "br"}
_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "head", "nav", "iframe"]


def html_to_text(html: str) -> tuple[str, str]:
    """(title, Markdown-like text) of an HTML page; scripts, styles and navigation are dropped."""
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    if not title:
        h1 = soup.find("h1")
        title = h1.get_text(" ", strip=True) if h1 else ""
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        line = re.sub(r"\s+", " ", "".join(current)).strip()
        if line:
            blocks.append(line)
        current.clear()

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:  # skips comments, CDATA, doctype
                    current.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if re.fullmatch(r"h[1-6]", name):
                flush()
                blocks.append("#" * int(name[1]) + " " + child.get_text(" ", strip=True))
            elif name in ("td", "th"):
                current.append(child.get_text(" ", strip=True) + " | ")
            elif name in _BLOCK_TAGS or name in ("ul", "ol", "table", "tbody", "thead", "body", "html", "main"):
                flush()
                if name == "li":
                    current.append("- ")
                walk(child)
                flush()
            else:
                walk(child)

    walk(soup)
    flush()
    body = "\n\n".join(b.rstrip(" |") for b in blocks)
    return title, body

"""Reading files into documents: Markdown, plain text, HTML and JSONL.

Each bad input becomes an :class:`IngestError` naming the file (and line) and what to do; it never stops the rest
of the batch. HTML is turned into Markdown-like text, so that chunking sees its headings the same way.

Nothing here trusts the input's shape: reads are bounded whatever ``stat`` says, FIFOs and devices are refused
without being opened in a blocking way, and nothing recurses over nesting the input controls (a page nested 50,000
tags deep, a JSONL line of 100,000 brackets).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragtune.corpus.chunking import has_text
from ragtune.corpus.model import RIGHTS_FIELDS, RawDocument, Rights, parse_groups, parse_when
from ragtune.errors import CorpusError, IngestError

MARKDOWN = {".md", ".markdown"}
TEXT = {".txt", ".text"}
HTML = {".html", ".htm"}
JSONL = {".jsonl"}
SUPPORTED = MARKDOWN | TEXT | HTML | JSONL
SUPPORTED_TEXT = ", ".join(sorted(SUPPORTED))
# A document id is a key, shown in every citation and listing: a path or a name, never content.
MAX_ID_CHARS = 1024
# Deeper JSON is refused rather than handed to code that recurses over it (encoders, validators, the store).
MAX_JSON_DEPTH = 100


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
        if not has_text(value):
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


def _walk(folder: Path, errors: list[IngestError]) -> Iterator[Path]:
    """Every entry under ``folder`` that is not a folder, in path order; links to folders are not followed, so a
    link loop cannot walk forever. FIFOs, devices and broken links are yielded too: reading them reports them."""
    pending = [folder]
    found: list[Path] = []
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                listed = list(entries)
        except OSError as exc:
            errors.append(IngestError(shown(current), f"cannot read the folder ({exc.strerror})", "check its rights"))
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue  # .git, .ragtune, editor files
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            (pending if is_dir else found).append(Path(entry.path))
    yield from sorted(found)


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
        try:
            is_dir = stat.S_ISDIR(os.stat(arg).st_mode)
        except OSError as exc:
            result.errors.append(_stat_error(arg, exc))
            continue
        source = defaults.source or default_source(arg)
        files = list(_walk(arg, result.errors)) if is_dir else [arg]
        for path in files:
            if path.suffix.lower() not in SUPPORTED:
                if is_dir:
                    result.skipped.append(shown(path))
                else:
                    result.errors.append(
                        IngestError(
                            shown(path), f"unsupported file type '{path.suffix}'", f"ragtune reads {SUPPORTED_TEXT}"
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


def shown(path: Path | str) -> str:
    """A path as an error line shows it, on one line: a byte that is not UTF-8 becomes ``\\xff``, a newline or other
    control character its escape (``\\n``)."""
    text = str(path)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if "\udc80" <= ch <= "\udcff":  # a byte os.fsdecode could not decode (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch if ch.isprintable() else ascii(ch)[1:-1])
    return "".join(out)


def shown_key(part: object) -> str:
    """One part of a field's path (a JSON key) as an error line shows it: as is, or quoted with escapes when it
    holds a newline or another character that does not print."""
    text = str(part)
    return text if text.isprintable() else json.dumps(text)


class NotRegularFileError(OSError):
    """A FIFO, socket, device or folder where a file was expected; ``kind`` says which."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))
        self.kind = kind


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, refusing FIFOs, sockets, devices and folders with :class:`NotRegularFileError`.

    The kind is checked on the resolved path before opening (opening a FIFO blocks until a writer comes, and a
    device may never end), and again on the open file, which is opened non-blocking in case it was swapped since.
    """
    kind = _kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotRegularFileError(path, kind)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(path, kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of a regular file: one byte more than allowed says it is over the limit,
    even when ``stat`` reported less (a file still growing, or one in /proc)."""
    with open_regular(path) as handle:
        return handle.read(max_bytes + 1)


def _stat_error(path: Path, exc: OSError) -> IngestError:
    """The error for a path that cannot be looked at or opened."""
    where = shown(path)
    if isinstance(exc, NotRegularFileError):
        if exc.kind == "a folder":
            return IngestError(where, "is a folder", "pass the folder itself")
        return IngestError(where, f"not a regular file but {exc.kind}", "ragtune reads regular files; leave it out")
    if exc.errno == errno.ELOOP:
        return IngestError(where, "symbolic link loop", "point the link at a file, or remove it")
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return IngestError(where, "broken symbolic link", "point the link at a file, or remove it")
        return IngestError(where, "no such file or folder", "check the path")
    if exc.errno in (errno.ENAMETOOLONG,):
        return IngestError(where, "path too long", "use a shorter path")
    if isinstance(exc, PermissionError):
        return IngestError(where, "permission denied", "make the file readable (chmod +r) or leave it out")
    return IngestError(where, f"cannot read ({exc.strerror or exc})", "check the file")


def _read_text(path: Path, max_bytes: int) -> str:
    where = shown(path)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise _too_large(where, size, max_bytes)
        data = read_limited(path, max_bytes)
    except OSError as exc:
        raise _stat_error(path, exc) from None
    if len(data) > max_bytes:
        raise _too_large(where, None, max_bytes)
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


def _too_large(where: str, size: int | None, max_bytes: int) -> IngestError:
    # size None: more was read than stat said (a growing file, /proc), so its real size is unknown
    shown_size = f"{size / 1e6:.3g} MB is over" if size is not None else "more than"
    return IngestError(
        where,
        f"{shown_size} the {max_bytes / 1e6:g} MB limit",
        "split the file or raise corpus.max_file_mb in ragtune.toml",
    )


def _read_file(
    path: Path, arg: Path, root: Path, source: str, defaults: Defaults, max_bytes: int
) -> Iterator[RawDocument | IngestError]:
    try:
        text = _read_text(path, max_bytes)
    except IngestError as err:
        yield err
        return
    suffix = path.suffix.lower()
    where = shown(path)
    resolved = str(path.resolve())
    if surrogate_at(resolved) is not None or surrogate_at(source) is not None:
        # a name that is not UTF-8 arrives as lone surrogates, which the store cannot hold
        yield IngestError(where, "the path is not valid UTF-8", "rename the file (or its folder) to a UTF-8 name")
        return
    if suffix in JSONL:
        yield from _read_jsonl(path, text, source, defaults)
        return
    if suffix in HTML:
        try:
            title, body = html_to_text(text)
        except RecursionError:  # html_to_text does not recurse; this guards the parser it calls
            yield IngestError(where, "HTML nested too deeply to read", "flatten the page's nesting or leave it out")
            return
        title = title or path.stem
    elif suffix in MARKDOWN:
        title, body = markdown_title(text) or path.stem, text
    else:
        title, body = path.stem, text
    if not has_text(body):
        yield IngestError(where, "empty document (no text to index)", "add content or remove the file")
        return
    doc_id = document_id(path, arg, root)
    if len(doc_id) > MAX_ID_CHARS:
        yield IngestError(
            where,
            f"the path gives a document id of {len(doc_id):,} characters",
            f"ids are at most {MAX_ID_CHARS:,} characters; move the file to a shorter path",
        )
        return
    yield RawDocument(
        doc_id=doc_id,
        title=title,
        text=body,
        rights=rights_of(defaults, source),
        where=where,
        path=resolved,
        valid_from=defaults.valid_from,
        given=given_rights(defaults),
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


def given_rights(defaults: Defaults) -> frozenset[str]:
    """The rights the command line (or the API) asked for; the others keep a known document's stored ones."""
    return frozenset(f for f in RIGHTS_FIELDS if getattr(defaults, f) is not None)


def rights_of(defaults: Defaults, source: str) -> Rights:
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
    key = ".".join(shown_key(p) for p in err["loc"]) or "line"
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


def surrogate_at(value: object) -> str | None:
    """Where the first lone surrogate in ``value`` (a string, or JSON data) is, in words; None if there is none.

    JSON can spell one (``"\\ud800"``) and so can a file name that is not UTF-8; no UTF-8 text can hold it, so the
    store, the embedder and every printed line would fail on it later. Nested data is walked without recursion.
    """
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        name, item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                at = f"\\u{ord(item[exc.start]):04x} at character {exc.start + 1}"
                return f"{at} of {name}" if name else at
        elif isinstance(item, dict):
            for key, sub in reversed(item.items()):
                label = f"{name}.{key}" if name else str(key)
                stack += [(label, sub), (f"a key of {name}" if name else "a key", key)]
        elif isinstance(item, list | tuple):
            stack += [(f"{name}[{i}]", sub) for i, sub in reversed(list(enumerate(item)))]
    return None


def json_depth_over(value: object, limit: int) -> bool:
    """Whether JSON data nests arrays and objects more than ``limit`` levels deep (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            stack += [(sub, depth + 1) for sub in (item.values() if isinstance(item, dict) else item)]
    return False


def json_problem(exc: ValueError | RecursionError) -> str:
    """What is wrong with a JSON text that ``json.loads`` refused, in words (its ``not valid JSON (...)`` part)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, RecursionError):
        return f"JSON nested more than {MAX_JSON_DEPTH} levels deep"  # json.loads gave up (near 1,000 levels)
    if "integer string conversion" in str(exc):  # Python refuses to convert integers this long (CVE-2020-10735)
        return f"a number of more than {sys.get_int_max_str_digits():,} digits (Python reads no longer ones)"
    return f"not valid JSON ({exc})"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON knows; write null or a string")


def parse_json_line(text: str) -> tuple[Any, str | None]:
    """(JSON value, None), or (None, what is wrong): not JSON (NaN and Infinity included, which Python would
    accept and no strict reader can read back), nested more than MAX_JSON_DEPTH levels (later code recurses over
    it), or holding a lone surrogate (no UTF-8 output can hold one)."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        return None, json_problem(exc)
    if json_depth_over(data, MAX_JSON_DEPTH):
        return None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep; flatten it"
    surrogate = surrogate_at(data)
    if surrogate is not None:
        return None, f"contains a lone surrogate ({surrogate}); fix the encoding: write the character itself"
    return data, None


def _read_jsonl(path: Path, text: str, source: str, defaults: Defaults) -> Iterator[RawDocument | IngestError]:
    fix = 'each line must be {"id": str, "text": str, "title"?: str, "metadata"?: {...}}'
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{shown(path)}:{number}"
        err = partial(IngestError, where, path=str(path))
        data, problem = parse_json_line(line)
        if problem is not None:
            yield err(problem, "fix or remove the line")
            continue
        try:
            record = JsonlRecord.model_validate(data)
        except ValidationError as exc:
            yield err(_first_error(exc), fix)
            continue
        if len(record.id) > MAX_ID_CHARS:
            yield err(
                f"id of {len(record.id):,} characters",
                f"ids are at most {MAX_ID_CHARS:,} characters; put long names in title",
            )
            continue
        if not has_text(record.text):
            yield err(f"empty document {record.id!r} (no text)", "add text or remove the line")
            continue
        meta = record.metadata
        try:
            valid_from = parse_when(meta.valid_from) if meta.valid_from else defaults.valid_from
            groups = parse_groups(meta.groups) if meta.groups is not None else defaults.groups
        except CorpusError as exc:
            yield err(str(exc), "fix the metadata")
            continue
        except (ValueError, OverflowError):  # a datetime whose offset moves it past year 1 or 9999 in UTC
            yield err(f"{meta.valid_from!r} is not a date ragtune can store (out of range in UTC)", "fix the metadata")
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
        rights = rights_of(named, meta.source or source)
        yield RawDocument(
            doc_id=record.id,
            title=(record.title or record.id).strip(),
            text=record.text.replace("\r\n", "\n"),
            rights=rights,
            where=where,
            path=str(path.resolve()),
            valid_from=valid_from,
            extra=meta.extra,
            given=given_rights(named),
        )


_BLOCK_TAGS = {"p", "div", "section", "article", "blockquote", "pre", "li", "tr", "dt", "dd", "figcaption", "br"}
_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "head", "nav", "iframe"]
_END = object()  # an exhausted child iterator


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

    # A stack of child iterators, not recursion: a page may nest tags as deep as it likes. ``None`` on the stack
    # marks the end of a block element, where its text is flushed as a paragraph.
    stack: list[Iterator[Any] | None] = [iter(soup.children)]
    while stack:
        top = stack[-1]
        if top is None:
            stack.pop()
            flush()
            continue
        child = next(top, _END)
        if child is _END:
            stack.pop()
            continue
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
            stack += [None, iter(child.children)]
        else:
            stack.append(iter(child.children))
    flush()
    body = "\n\n".join(b.rstrip(" |") for b in blocks)
    return title, body

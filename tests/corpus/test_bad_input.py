"""A bad file never stops the rest (issue 12, points 4 and 8): inputs that used to end ingest with an internal error
(exit 70) or hang it are one ``FILE[:LINE]: problem`` line each, and the other files are still read and stored.

The library is driven in-process for each input; the real CLI in a subprocess for the ones issue 12 names.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.corpus.chunking import chunk_text, has_text
from ragtune.corpus.ingest import ingest_documents
from ragtune.corpus.loaders import MAX_ID_CHARS, Defaults, ReadResult, html_to_text, read_paths
from ragtune.corpus.model import RawDocument, Rights
from ragtune.project import Project
from tests.conftest import no_hang, write

GOOD = "# Good\n\nThis file is fine and must be stored whatever its neighbours hold."
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def read(paths: list[Path], root: Path, max_bytes: int = 10_000_000) -> ReadResult:
    with no_hang():
        return read_paths(paths, Defaults(), root, max_bytes)


def one_error(res: ReadResult, where: str, expected: str) -> str:
    """The single error line, which names ``where`` and says ``expected``."""
    lines = [str(e) for e in res.errors]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{where}: "), lines[0]
    assert expected in lines[0] and "\n" not in lines[0], lines[0]
    return lines[0]


# --- HTML -----------------------------------------------------------------------------------------------------


def test_html_nested_50000_deep_converts_without_recursion() -> None:
    title, text = html_to_text("<div>" * 50_000 + "<h1>Deep</h1><p>found at the bottom</p>" + "</div>" * 50_000)
    assert title == "Deep" and text == "# Deep\n\nfound at the bottom"


def test_30000_unclosed_tags_convert() -> None:
    _, text = html_to_text("<b><i>" * 15_000 + "still text")
    assert text == "still text"
    _, text = html_to_text("<li>x" * 30_000)
    assert text.count("- x") == 30_000


def test_deep_html_files_next_to_a_good_one(tmp_path: Path) -> None:
    write(tmp_path / "d" / "good.md", GOOD)
    write(tmp_path / "d" / "deep.html", "<div>" * 50_000 + "Deep text.")
    write(tmp_path / "d" / "empty.html", "<div>" * 50_000)
    res = read([tmp_path / "d"], tmp_path)
    one_error(res, str(tmp_path / "d" / "empty.html"), "empty document (no text to index)")
    by_id = {d.doc_id: d for d in res.documents}
    assert set(by_id) == {"d/good.md", "d/deep.html"} and by_id["d/deep.html"].text == "Deep text."


# --- JSONL ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[" * 100_000, "JSON nested more than 100 levels deep"),
        ('{"id": "n", "text": "t", "metadata": {"extra": {"n": ' + "1" * 5001 + "}}}", "more than 4,300 digits"),
        ('{"id": "s", "text": "bad \\ud800 here"}', "contains a lone surrogate (\\ud800 at character 5 of text)"),
        ('{"id": "\\udfff", "text": "t"}', "lone surrogate (\\udfff at character 1 of id)"),
        ('{"id": "t", "title": "x\\ud800", "text": "t"}', "lone surrogate (\\ud800 at character 2 of title)"),
        ('{"id": "k", "text": "t", "metadata": {"extra": {"\\ud800": 1}}}', "a key of metadata.extra"),
        ('{"id": "e", "text": "t", "metadata": {"extra": ' + "[" * 150 + "]" * 150 + "}}", "more than 100 levels"),
        ('{"id": "' + "i" * (MAX_ID_CHARS + 1) + '", "text": "t"}', "id of 1,025 characters; ids are at most 1,024"),
        ('{"id": "z", "text": "' + ZERO_WIDTH + ' \\n\\u200b"}', "empty document 'z' (no text)"),
        ('{"id": "\\u200b\\u2060", "text": "t"}', "field 'id': Value error, must not be blank"),
        ('{"id": "d", "text": "t", "metadata": {"valid_from": "9999-12-31T23:00:00-05:00"}}', "out of range in UTC"),
        ('{"id": "nan", "text": "t", "metadata": {"extra": {"score": NaN}}}', "NaN is not a number JSON knows"),
        ('{"id": "inf", "text": "t", "metadata": {"extra": {"x": -Infinity}}}', "-Infinity is not a number JSON"),
    ],
    ids=[
        "deep-array",
        "5001-digits",
        "surrogate-text",
        "surrogate-id",
        "surrogate-title",
        "surrogate-key",
        "deep-extra",
        "long-id",
        "zero-width-text",
        "zero-width-id",
        "date-overflow",
        "nan-extra",
        "infinity-extra",
    ],
)
def test_bad_jsonl_line_is_one_line_and_the_others_are_read(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path / "d.jsonl", '{"id": "before", "text": "ok"}\n' + line + '\n{"id": "after", "text": "ok"}\n')
    res = read([path], tmp_path)
    one_error(res, f"{path}:2", expected)
    assert [d.doc_id for d in res.documents] == ["before", "after"]


def test_an_id_of_a_million_characters_is_refused_without_being_echoed(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", json.dumps({"id": "x" * 1_000_000, "text": "t"}) + "\n")
    line = one_error(read([path], tmp_path), f"{path}:1", "id of 1,000,000 characters")
    assert len(line) < 200


# --- files that are not regular files -------------------------------------------------------------------------


def test_fifo_in_a_folder_and_on_the_command_line(tmp_path: Path) -> None:
    good = write(tmp_path / "d" / "good.md", GOOD)
    os.mkfifo(tmp_path / "d" / "pipe.md")
    res = read([tmp_path / "d"], tmp_path)
    one_error(res, str(tmp_path / "d" / "pipe.md"), "not a regular file but a FIFO (named pipe)")
    assert [d.doc_id for d in res.documents] == ["d/good.md"]
    res = read([tmp_path / "d" / "pipe.md", good], tmp_path)
    one_error(res, str(tmp_path / "d" / "pipe.md"), "not a regular file but a FIFO")
    assert [d.doc_id for d in res.documents] == ["d/good.md"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_link_to_a_device_is_refused_unread(tmp_path: Path, device: str) -> None:
    write(tmp_path / "d" / "good.md", GOOD)
    (tmp_path / "d" / "dev.md").symlink_to(device)
    res = read([tmp_path / "d"], tmp_path)
    one_error(res, str(tmp_path / "d" / "dev.md"), "not a regular file but a device; ragtune reads regular files")
    assert [d.doc_id for d in res.documents] == ["d/good.md"]


def test_reads_are_bounded_whatever_stat_says(tmp_path: Path) -> None:
    # /proc files report a size of 0 and then hold text: the limit holds on what is read, not on stat
    link = tmp_path / "status.txt"
    link.symlink_to("/proc/self/status")
    assert link.stat().st_size == 0
    one_error(read([link], tmp_path, max_bytes=10), str(link), "more than the 1e-05 MB limit")
    assert read([link], tmp_path).documents[0].text.startswith("Name:")


def test_symlink_loops(tmp_path: Path) -> None:
    write(tmp_path / "d" / "good.md", GOOD)
    (tmp_path / "d" / "loop.md").symlink_to("loop.md")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "d" / "up").symlink_to("..")  # a link to a folder above: not followed, so no endless walk
    res = read([tmp_path / "d", tmp_path / "loop"], tmp_path)
    assert [str(e) for e in res.errors] == [
        f"{tmp_path / 'd' / 'loop.md'}: symbolic link loop; point the link at a file, or remove it",
        f"{tmp_path / 'loop'}: symbolic link loop; point the link at a file, or remove it",
    ]
    assert [d.doc_id for d in res.documents] == ["d/good.md"]
    assert res.skipped == [str(tmp_path / "d" / "up")]


def test_broken_link_and_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gone.md").symlink_to("nowhere.md")
    one_error(read([tmp_path / "gone.md"], tmp_path), str(tmp_path / "gone.md"), "broken symbolic link")
    # Tests run as root, where chmod cannot make a file unreadable: fail the open itself.
    path = write(tmp_path / "locked.md", "secret")

    def deny(path: Path) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ragtune.corpus.loaders.open_regular", deny)
    one_error(read([path], tmp_path), str(path), "permission denied; make the file readable")


# --- names and ids --------------------------------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    write(folder / "good.md", GOOD)
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.md"), "w") as handle:
        handle.write("# Caf\n\nText.")
    res = read([folder], tmp_path)
    one_error(res, f"{folder}/caf\\xe9.md", "the path is not valid UTF-8; rename the file")
    assert [d.doc_id for d in res.documents] == ["d/good.md"]


def test_a_path_too_long_for_an_id(tmp_path: Path) -> None:
    deep = tmp_path / "d"
    for i in range(5):
        deep = deep / (str(i) * 240)
    path = write(deep / "note.md", "Text.")
    write(tmp_path / "d" / "good.md", GOOD)
    res = read([tmp_path / "d"], tmp_path)
    one_error(res, str(path), f"ids are at most {MAX_ID_CHARS:,} characters; move the file to a shorter path")
    assert [d.doc_id for d in res.documents] == ["d/good.md"]


# --- zero-width documents -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".md", ".txt", ".html"])
def test_a_file_of_zero_width_characters_is_empty(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"zw{suffix}", f"{ZERO_WIDTH}\n\n \u200b\t{ZERO_WIDTH}\n")
    one_error(read([path], tmp_path), str(path), "empty document (no text to index)")


def test_has_text() -> None:
    assert not has_text(ZERO_WIDTH + " \n\t\u00ad\u200e")
    assert has_text(ZERO_WIDTH + "a") and has_text("中") and has_text("é")


def test_chunking_makes_no_chunk_of_zero_width_paragraphs() -> None:
    def spans(text: str) -> list[tuple[int, int]]:
        return [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]

    assert chunk_text(ZERO_WIDTH + "\n\n" + ZERO_WIDTH, "t", spans, 64) == []
    chunks = chunk_text("Real text.\n\n" + ZERO_WIDTH, "t", spans, 64)
    assert [c.body("Real text.\n\n" + ZERO_WIDTH) for c in chunks] == ["Real text."]


def test_a_zero_width_document_given_to_the_api_is_not_stored(project: Project) -> None:
    rights = Rights(source="api", license="CC0")
    doc = RawDocument("zw", "zw", ZERO_WIDTH * 3, rights, where="api:zw", path="")
    report = ingest_documents(project, [doc, RawDocument("ok", "ok", "Fine text.", rights, "api:ok", "")])
    assert report.added == ["ok"]
    assert [e["message"] for e in report.errors] == ["api:zw: no indexable text; add content or remove the document"]


# --- the real CLI ---------------------------------------------------------------------------------------------


def ragtune(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The installed ``ragtune`` command; a read that blocks fails the test at ``timeout`` instead of hanging it."""
    exe = shutil.which("ragtune", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "ragtune.cli.main"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    proc = subprocess.run([*command, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def _deep_html(folder: Path) -> tuple[list[str], str]:
    write(folder / "deep.html", "<div>" * 50_000)
    write(folder / "deeptext.html", "<div>" * 50_000 + "Deep text.")
    return ["."], "deep.html: empty document (no text to index); add content or remove the file"


def _digits(folder: Path) -> tuple[list[str], str]:
    write(folder / "n.jsonl", '{"id": "n", "text": "t", "metadata": {"extra": {"n": ' + "1" * 5001 + "}}}\n")
    return ["."], "n.jsonl:1: a number of more than 4,300 digits"


def _surrogate(folder: Path) -> tuple[list[str], str]:
    write(folder / "s.jsonl", '{"id": "s", "text": "bad \\ud800 here"}\n')
    return ["."], "s.jsonl:1: contains a lone surrogate (\\ud800 at character 5 of text); fix the encoding"


def _loop_argument(folder: Path) -> tuple[list[str], str]:
    (folder / "loop").symlink_to("loop")
    return ["loop", "good.md"], "loop: symbolic link loop; point the link at a file, or remove it"


def _fifo_in_folder(folder: Path) -> tuple[list[str], str]:
    os.mkfifo(folder / "pipe.md")
    return ["."], "pipe.md: not a regular file but a FIFO (named pipe); ragtune reads regular files; leave it out"


def _fifo_argument(folder: Path) -> tuple[list[str], str]:
    os.mkfifo(folder / "pipe.md")
    return ["pipe.md", "good.md"], "pipe.md: not a regular file but a FIFO (named pipe)"


def _dev_zero(folder: Path) -> tuple[list[str], str]:
    (folder / "zero.md").symlink_to("/dev/zero")
    return ["."], "zero.md: not a regular file but a device; ragtune reads regular files; leave it out"


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "proj"
    ragtune("init", str(root), cwd=root.parent)
    return root


@pytest.mark.integration
@pytest.mark.parametrize(
    "make", [_deep_html, _digits, _surrogate, _loop_argument, _fifo_in_folder, _fifo_argument, _dev_zero]
)
def test_cli_reports_one_line_and_stores_the_good_file(cli_project: Path, make) -> None:  # type: ignore[no-untyped-def]
    folder = cli_project / make.__name__.strip("_")
    write(folder / "good.md", GOOD)
    args, expected = make(folder)
    proc = ragtune("ingest", *args, cwd=folder, timeout=240)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {expected}"), proc.stderr
    docs = json.loads(ragtune("docs", "list", "--json", cwd=cli_project).stdout)["documents"]
    ids = {d["doc_id"] for d in docs}
    assert f"{folder.name}/good.md" in ids
    if make is _deep_html:
        assert f"{folder.name}/deeptext.html" in ids
    with sqlite3.connect(cli_project / ".ragtune" / "ragtune.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

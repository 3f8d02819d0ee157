from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.corpus.loaders import Defaults, html_to_text, read_paths
from tests.conftest import write


def read(paths: list[Path], root: Path, max_bytes: int = 10_000_000, **kw: object):  # type: ignore[no-untyped-def]
    return read_paths(paths, Defaults(**kw), root, max_bytes)  # type: ignore[arg-type]


def test_markdown_text_html_jsonl(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.md", "# Alpha guide\n\nBody.")
    write(tmp_path / "d" / "b.txt", "Plain text.")
    write(
        tmp_path / "d" / "c.html",
        "<html><head><title>Gamma</title><style>p{}</style></head>"
        "<body><script>var secret='js';</script><h2>Part</h2><p>Visible text.</p><ul><li>one</li></ul></body></html>",
    )
    write(
        tmp_path / "d" / "e.jsonl",
        '{"id": "rel-1", "text": "Webhooks.", "title": "R1", "metadata": '
        '{"license": "CC0", "groups": ["eng"], "no_training": true, "owner": "pm", "valid_from": "2026-01-05"}}\n',
    )
    write(tmp_path / "d" / "img.png", "not really")
    res = read([tmp_path / "d"], tmp_path, license="MIT")
    assert res.errors == []
    assert res.skipped == [str(tmp_path / "d" / "img.png")]
    by_id = {d.doc_id: d for d in res.documents}
    assert set(by_id) == {"d/a.md", "d/b.txt", "d/c.html", "rel-1"}
    assert by_id["d/a.md"].title == "Alpha guide"
    assert by_id["d/b.txt"].rights.source == "d" and by_id["d/b.txt"].rights.license == "MIT"
    html = by_id["d/c.html"]
    assert html.title == "Gamma" and "## Part" in html.text and "- one" in html.text
    assert "secret" not in html.text and "p{}" not in html.text
    rel = by_id["rel-1"].rights
    assert (rel.license, rel.groups, rel.may_train, rel.owner) == ("CC0", ("eng",), False, "pm")
    assert by_id["rel-1"].valid_from is not None and by_id["rel-1"].valid_from.isoformat().startswith("2026-01-05")


def test_ids_are_stable_however_the_path_is_given(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "x" / "a.md", "A.")
    whole = read([tmp_path / "docs"], tmp_path).documents[0].doc_id
    single = read([tmp_path / "docs" / "x" / "a.md"], tmp_path).documents[0].doc_id
    assert whole == single == "docs/x/a.md"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bin.txt", b"abc\x00\x01\x02", "looks like a binary file"),
        ("latin.md", "café".encode("latin-1"), "not valid UTF-8 (byte 0xe9 at offset 3); convert it to UTF-8"),
        ("empty.md", b"  \n\n ", "empty document"),
        ("big.txt", b"x" * 2000, "0.002 MB is over the 0.001 MB limit; split the file or raise corpus.max_file_mb"),
        ("data.pdf", b"%PDF", "unsupported file type '.pdf'"),
    ],
)
def test_each_bad_file_gets_one_line_and_the_rest_still_reads(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    good = write(tmp_path / "good.md", "# Good\n\nFine.")
    res = read([bad, good], tmp_path, max_bytes=1000)
    assert [d.doc_id for d in res.documents] == ["good.md"]
    assert len(res.errors) == 1
    line = str(res.errors[0])
    assert line.startswith(str(bad)) and expected in line and "\n" not in line


def test_missing_path(tmp_path: Path) -> None:
    res = read([tmp_path / "nope"], tmp_path)
    assert str(res.errors[0]) == f"{tmp_path / 'nope'}: no such file or folder; check the path"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod cannot make a file unreadable: fail the read itself.
    path = write(tmp_path / "locked.md", "secret")

    def deny(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ragtune.corpus.loaders.open_regular", deny)
    res = read([path], tmp_path)
    assert "locked.md: permission denied; make the file readable" in str(res.errors[0])


def test_jsonl_bad_lines_name_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl",
        '{"id": "a", "text": "ok"}\n{oops\n{"id": "b"}\n{"id": "c", "text": "x", "metadata": {"licence": "MIT"}}\n'
        '\n{"id": "d", "text": "   "}\n{"id": "a", "text": "again"}\n{"id": "e", "text": "y", "metadata": {"valid_from": "soon"}}\n',
    )
    res = read([path], tmp_path)
    assert [d.doc_id for d in res.documents] == ["a"]
    lines = [str(e) for e in res.errors]
    assert lines[0].startswith(f"{path}:2: not valid JSON")
    assert lines[1].startswith(f"{path}:3: missing field 'text'")
    assert lines[2].startswith(f"{path}:4: unknown field 'metadata.licence'")
    assert lines[3].startswith(f"{path}:6: empty document 'd'")
    assert lines[4].startswith(f"{path}:7: duplicate document id 'a'")
    assert lines[5].startswith(f"{path}:8: 'soon' is not a date")


def test_html_tables_and_headings() -> None:
    title, text = html_to_text(
        "<h1>Plans</h1><table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td>"
        "<td>49 €</td></tr></table><!-- hidden comment -->"
    )
    assert title == "Plans"
    assert text.splitlines()[0] == "# Plans"
    assert "Pro | 49 €" in text and "hidden" not in text


def test_markdown_title_skips_code_and_bare_hashes(tmp_path: Path) -> None:
    path = write(tmp_path / "guide.md", "```\n# not the title\n```\n#\nstray\n\n## Sub\n\n# Real title\n\ntext")
    assert read([path], tmp_path).documents[0].title == "Real title"
    plain = write(tmp_path / "notes.md", "no heading at all")
    assert read([plain], tmp_path).documents[0].title == "notes"

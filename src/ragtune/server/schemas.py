"""Request bodies, validated. Unknown fields are refused (a typo must not be ignored silently), except in the
OpenAI-compatible chat request, whose clients send options ragtune has no use for.

Every string a body carries is checked by :data:`Unicode` (:data:`Text` is a checked ``str``): JSON may spell a lone
surrogate (``"\\ud800"``), which Python then holds as a ``str`` that cannot be encoded, and which would otherwise
fail deep inside (SQLite, the tokenizer, the JSON reply) as a 500.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ragtune.corpus.loaders import Defaults, given_rights, rights_of
from ragtune.corpus.model import RawDocument, parse_groups, parse_when
from ragtune.errors import CorpusError
from ragtune.server.auth import TOKEN_ENV
from ragtune.server.errors import ApiError


def _bad_text(value: str) -> str | None:
    """Why ``value`` cannot be stored or sent back (it holds a lone surrogate), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate {value[exc.start]!r} at character {exc.start}"  # repr: escaped, never raw
    return None


def _first_bad(value: Any, path: str) -> tuple[str, str] | None:
    """The first string in a JSON value, keys included, that is not valid text: (where, why)."""
    if isinstance(value, str):
        problem = _bad_text(value)
        return (path, problem) if problem else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        problem = _bad_text(key) if isinstance(key, str) else None
        if problem:
            return path, f"in a key: {problem}"
        found = _first_bad(item, f"{path}.{key}")
        if found:
            return found
    return None


def _valid_unicode(value: Any) -> Any:
    found = _first_bad(value, "")
    if found:
        where, problem = found
        inside = f" at '{where[1:]}'" if where else ""
        raise PydanticCustomError(
            "invalid_text", "not valid Unicode text{inside} ({problem})", {"inside": inside, "problem": problem}
        )
    return value


Unicode = BeforeValidator(_valid_unicode)
"""On a field of a request body: every string it holds (in lists and objects too, keys included) must be valid
Unicode, or the body is refused with 422 naming the field. Runs before the type's own checks."""
Text = Annotated[str, Unicode]


class _Scoped(BaseModel):
    """A body whose access groups are the caller's. ``groups`` is declared only to be refused with a clear 400."""

    model_config = ConfigDict(extra="forbid")

    groups: Any = Field(None, description="Not accepted: access groups come from the caller's token.")

    def refuse_groups(self) -> None:
        if self.groups is not None:
            raise ApiError(
                400,
                "'groups' is not accepted in a request: access groups come from the caller's token "
                f"({TOKEN_ENV} or [server.callers.NAME] groups in ragtune.toml)",
                "groups_not_allowed",
            )


class SearchRequest(_Scoped):
    query: Text = Field(description="What to search for.")
    k: int | None = Field(None, ge=1, le=1000, description="Results returned (default [retrieval] k).")
    as_of: Text | None = Field(None, description="Search the corpus as it was then (YYYY-MM-DD or ISO datetime).")
    mode: Annotated[Literal["hybrid", "keyword", "dense"], Unicode] = Field(
        "hybrid", description="Which retrievers to use."
    )


class AskRequest(_Scoped):
    question: Text = Field(description="The question.")
    arm: Text = Field(
        "rag",
        pattern=r"^(rag|closed-book|(adapter|hybrid):[A-Za-z0-9._-]+)$",
        description="rag (retrieved sources), closed-book (the model alone), adapter:VERSION (a fine-tune alone) "
        "or hybrid:VERSION (a fine-tune with retrieved sources); VERSION may be an alias such as production.",
    )
    as_of: Text | None = Field(None, description="Answer from the corpus as it was then.")
    k: int | None = Field(None, ge=1, le=100, description="Chunks retrieved (default [answer] sources).")


class DocumentIn(BaseModel):
    """One document to ingest: the fields of a JSONL line, with its metadata flattened."""

    model_config = ConfigDict(extra="forbid")

    doc_id: Text = Field(min_length=1, max_length=1000)
    text: Text
    title: Text | None = None
    source: Text | None = Field(None, description="Source name (default 'api').")
    license: Text | None = Field(None, description="Licence (default [corpus] default_license).")
    owner: Text | None = None
    groups: Annotated[list[str] | str | None, Unicode] = Field(
        None, description="Access groups that may read this document ([] makes it public: a loosening)."
    )
    may_train: bool | None = Field(None, description="May be trained on (new documents: true).")
    may_retrieve: bool | None = Field(None, description="May be retrieved (new documents: true).")
    valid_from: Text | None = Field(None, description="When this content became valid (default: now).")
    extra: Annotated[dict[str, Any], Unicode] = Field(
        default_factory=dict, description="Free-form fields kept with the document."
    )


class IngestRequest(_Scoped):
    documents: list[DocumentIn] = Field(min_length=1)
    rights_change: bool = Field(
        False,
        description="Allow loosening the rights of known documents (dropping groups, allowing training or "
        "retrieval, changing or clearing a licence). Rights a document does not name keep their stored values.",
    )

    def raw_documents(self, default_license: str) -> list[RawDocument]:
        """The documents as the ingest pipeline takes them; a bad one refuses the whole request, naming it."""
        out: list[RawDocument] = []
        seen: dict[str, int] = {}
        for i, doc in enumerate(self.documents):
            doc_id = doc.doc_id.strip()
            if not doc_id:
                raise ApiError(400, f"documents[{i}]: blank doc_id; give each document an id")
            where = f"documents[{i}] ({doc_id})"
            if doc_id in seen:
                raise ApiError(
                    400, f"{where}: duplicate doc_id (also documents[{seen[doc_id]}]); give each document its own id"
                )
            seen[doc_id] = i
            if not doc.text.strip():
                raise ApiError(400, f"{where}: empty text; add text or leave the document out")
            try:
                valid_from = parse_when(doc.valid_from) if doc.valid_from is not None else None
                groups = parse_groups(doc.groups) if doc.groups is not None else None
            except CorpusError as exc:
                raise ApiError(400, f"{where}: {exc}") from None
            # what the body names; a known document keeps its stored rights for the rest (see ingest.resolve_rights)
            named = Defaults(
                license=doc.license or None,
                may_retrieve=doc.may_retrieve,
                may_train=doc.may_train,
                groups=groups,
                owner=doc.owner,
                default_license=default_license,
            )
            rights = rights_of(named, doc.source or "api")
            out.append(
                RawDocument(
                    doc_id=doc_id,
                    title=(doc.title or doc_id).strip(),
                    text=doc.text.replace("\r\n", "\n"),
                    rights=rights,
                    where=where,
                    path="",
                    valid_from=valid_from,
                    extra=doc.extra,
                    given=given_rights(named),
                )
            )
        return out


class ForgetRequest(_Scoped):
    doc_ids: Annotated[list[str], Unicode] = Field(default_factory=list, description="Documents to forget.")
    source: Text | None = Field(None, description="Forget every document of this source.")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Text
    content: Annotated[str | list[dict[str, Any]] | None, Unicode] = None
    name: Text | None = None

    def text(self, where: str) -> str:
        """The message's text; a part that is not text (an image, audio) is refused, not dropped."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        for j, part in enumerate(self.content):
            if part.get("type") != "text":
                raise unsupported(f"{where}.content.{j}", f"content parts of type {part.get('type')!r} (this model "
                                  "reads text only)")  # fmt: skip
        return "\n".join(str(p.get("text", "")) for p in self.content)


def unsupported(param: str, what: str) -> ApiError:
    """A 400 naming the parameter ragtune cannot honour (OpenAI's ``param``), never a silent ignore."""
    return ApiError(400, f"{what} is not supported by this server; leave '{param}' out", "unsupported_parameter",
                    param=param)  # fmt: skip


_NEUTRAL: dict[str, tuple[Any, ...]] = {
    # accepted only where they ask for what ragtune does anyway
    "n": (None, 1),
    "tools": (None, []),
    "functions": (None, []),
    "tool_choice": (None, "none"),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None, True, False),
    "response_format": (None, {"type": "text"}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "top_p": (None, 1, 1.0),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
    "store": (None, False),
}
_WHAT = {
    "n": "more than one choice (n > 1)",
    "tools": "tools",
    "functions": "functions",
    "tool_choice": "tool calls",
    "function_call": "function calls",
    "response_format": "a response_format other than text (JSON mode, structured outputs)",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
    "logit_bias": "logit_bias",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "top_p": "top_p other than 1 (nucleus sampling)",
    "modalities": "output other than text",
    "store": "storing completions (store: true)",
}
_IGNORED = ("user", "metadata", "service_tier", "safety_identifier", "prompt_cache_key")
"""Fields that describe the request rather than the answer; accepted and recorded nowhere."""


class ChatRequest(_Scoped):
    """An OpenAI chat completion request. What ragtune honours is declared here (docs/server.md lists it); an
    option it cannot honour is refused with a 400 naming it, and an unknown one as OpenAI refuses it."""

    model_config = ConfigDict(extra="allow")

    model: Text
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: Annotated[dict[str, Any] | None, Unicode] = None
    max_tokens: int | None = Field(None, ge=1, le=8192, description="Most tokens in the answer.")
    max_completion_tokens: int | None = Field(None, ge=1, le=8192, description="The same, in the newer name.")
    temperature: float | None = Field(None, ge=0, le=2, description="Omitted: [generator] temperature (0, greedy).")
    seed: int | None = Field(None, description="Sampling seed (omitted: [generator] seed).")
    stop: Annotated[str | list[str] | None, Unicode] = Field(None, description="Up to 4 strings that end the answer.")

    def check_supported(self) -> None:
        for name, value in (self.model_extra or {}).items():
            if name in _IGNORED:
                continue
            if name not in _NEUTRAL:
                raise ApiError(400, f"Unrecognized request argument supplied: {name}", "unknown_parameter",
                               param=name)  # fmt: skip
            if value not in _NEUTRAL[name]:
                raise unsupported(name, _WHAT.get(name, name))
        if self.stream_options and set(self.stream_options) - {"include_usage", "include_obfuscation"}:
            extra = sorted(set(self.stream_options) - {"include_usage", "include_obfuscation"})[0]
            raise unsupported(f"stream_options.{extra}", f"stream option {extra!r}")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ApiError(400, f"'stop' holds {len(self.stop)} strings; give at most 4", "invalid_value", param="stop")

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in stops if s)

    def conversation(self) -> tuple[str, str | None, tuple[dict[str, str], ...]]:
        """(the question, the caller's system text, the earlier turns): the question is the last message, which
        must be the user's; system and developer messages join into the system text, in order."""
        system: list[str] = []
        turns: list[dict[str, str]] = []
        for i, message in enumerate(self.messages):
            where = f"messages.{i}"
            role = message.role
            if role in ("tool", "function") or (message.model_extra or {}).get("tool_calls"):
                raise unsupported(where, "tool messages and tool calls")
            if role not in ("system", "developer", "user", "assistant"):
                raise ApiError(400, f"{where}.role: unknown role {role!r}; use system, user or assistant",
                               "invalid_value", param=f"{where}.role")  # fmt: skip
            text = message.text(where)
            if role in ("system", "developer"):
                system.append(text)
            else:
                turns.append({"role": role, "content": text})
        if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
            raise ApiError(400, "no question: the last message must be the user's, and not empty", "invalid_value",
                           param="messages")  # fmt: skip
        joined = "\n\n".join(t for t in system if t.strip()) or None
        return turns[-1]["content"], joined, tuple(turns[:-1])


class EmbeddingsRequest(BaseModel):
    """An OpenAI embeddings request: the project's embedder, so other tools (and other ragtune projects with
    ``[embedder] backend = "openai"``) can share one loaded model."""

    model_config = ConfigDict(extra="allow")

    model: Text
    input: Annotated[str | list[str], Unicode] = Field(
        description="A text or a list of texts (token-id inputs are not accepted)."
    )
    encoding_format: Text = "float"

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts or any(not isinstance(t, str) or not t for t in texts):
            raise ApiError(400, "input must be a non-empty text or a list of non-empty texts", "invalid_input")
        if len(texts) > 2048:
            raise ApiError(400, f"{len(texts)} inputs in one request; send at most 2048", "too_many_inputs")
        if self.encoding_format not in ("float", "base64"):
            raise ApiError(400, "encoding_format must be 'float' or 'base64'", "invalid_encoding_format")
        return texts

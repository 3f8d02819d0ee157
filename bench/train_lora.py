"""LoRA training throughput: ragtune's train_lora against TRL's SFTTrainer, same data, model, LoRA and machine.

    PYTHONPATH=src .venv/bin/python bench/train_lora.py            # table
    PYTHONPATH=src .venv/bin/python bench/train_lora.py --json     # the same figures as JSON

Both train SmolLM2-135M-Instruct (the packaged model, dequantized to fp32) with the same LoRA (r 16, alpha 32,
dropout 0.05 on q/k/v/o), batch size, learning rate and schedule, gradient clipping and max length, for the same
epochs over the same chat examples, with the loss on the answer tokens only; neither evaluates nor saves during
the run. Tokens are the examples' real (unpadded) tokens, prompt and answer, counted once per epoch: the same
count for both. Time is the training loop (``trainer.train()`` for TRL, the loop inside ``train_lora`` for ours);
the wall time with loading and setup is reported too. TRL runs twice: as configured to match ours (no gradient
checkpointing), and with SFTConfig's own default (gradient checkpointing on), which is what a plain run gets.

The data are the bundled handbook's cases (src/ragtune/examples/handbook/cases.jsonl): each question with its
first acceptable answer, written in the case's format when it has one. Then "retrain the example adapter": the
format cases alone, trained with the default [train] settings (8 train, 2 holdout), timed end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ragtune.generation.base import Message
from ragtune.generation.local import dequantized_folder, smollm2_gguf
from ragtune.tuning.train import TrainSettings, train_lora

CASES = Path(__file__).resolve().parents[1] / "src" / "ragtune" / "examples" / "handbook" / "cases.jsonl"
SIGN_OFF = "— Lumen Relay Support"
# labels for the triage cases, which have no acceptable answers (the style guide's rules applied by hand)
TRIAGE = {
    "triage-1": {"plan": "Unknown", "category": "billing", "severity": 2},
    "triage-2": {"plan": "Unknown", "category": "api", "severity": 2},
    "triage-3": {"plan": "Unknown", "category": "security", "severity": 3},
    "triage-4": {"plan": "Unknown", "category": "account", "severity": 2},
}


def _answer(case: dict[str, Any]) -> str | None:
    if case["id"] in TRIAGE:
        return json.dumps(TRIAGE[case["id"]])
    if not case.get("answers"):
        return None
    first = str(case["answers"][0])
    if "regex" in case.get("format", {}):  # the style guide's customer answer: plan tag, answer, sign-off
        return f"[Unknown plan] {first}.\n{SIGN_OFF}"
    return first


def handbook_examples(format_only: bool) -> list[list[Message]]:
    out = []
    for line in CASES.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if format_only and "format" not in case:
            continue
        answer = _answer(case)
        if answer is not None:
            out.append([{"role": "user", "content": case["question"]}, {"role": "assistant", "content": answer}])
    return out


def run_ours(data: list[list[Message]], settings: TrainSettings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train_lora(data, [], settings, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
    return {
        "system": "ragtune train_lora",
        "tokens": result.train_tokens,
        "steps": result.steps,
        "train_s": result.train_seconds,
        "wall_s": wall,
        "tokens_per_s": result.train_tokens / result.train_seconds,
        "mean_loss": sum(result.train_losses) / len(result.train_losses),
    }


def run_trl(data: list[list[Message]], settings: TrainSettings, *, checkpointing: bool) -> dict[str, Any]:
    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    folder = dequantized_folder(smollm2_gguf())
    rows = [{"prompt": m[:-1], "completion": m[-1:]} for m in data]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        config = SFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=settings.batch_size,
            num_train_epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=settings.warmup_ratio,
            weight_decay=settings.weight_decay,
            max_grad_norm=settings.max_grad_norm,
            optim="adamw_torch",
            max_length=settings.max_seq_len,
            gradient_checkpointing=checkpointing,
            completion_only_loss=True,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10_000,
            report_to="none",
            disable_tqdm=True,
            seed=settings.seed,
            use_cpu=not torch.cuda.is_available(),
        )
        lora = LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=list(settings.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
        )
        t1 = time.perf_counter()
        out = trainer.train()
        train_s = time.perf_counter() - t1
        wall = time.perf_counter() - t0
        per_epoch = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    tokens = per_epoch * settings.epochs
    return {
        "system": f"TRL {trl.__version__} SFTTrainer" + (" (default: gradient checkpointing)" if checkpointing else ""),
        "tokens": tokens,
        "steps": int(out.global_step),
        "train_s": train_s,
        "wall_s": wall,
        "tokens_per_s": tokens / train_s,
        "mean_loss": float(out.training_loss),  # the mean of the steps' losses, as ours: a check they match
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the throughput runs")
    parser.add_argument("--no-trl-default", action="store_true", help="skip TRL with gradient checkpointing")
    parser.add_argument("--no-retrain", action="store_true", help="skip the example adapter retraining")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    dequantized_folder(smollm2_gguf())  # build the cache outside any timing
    data = handbook_examples(format_only=False)
    settings = TrainSettings(epochs=args.epochs, checkpoint_every=0)
    runs = [run_ours(data, settings), run_trl(data, settings, checkpointing=False)]
    if not args.no_trl_default:
        runs.append(run_trl(data, settings, checkpointing=True))
    ours = runs[0]
    for r in runs:
        r["ours_vs_this"] = ours["tokens_per_s"] / r["tokens_per_s"]
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "data": {"examples": len(data), "epochs": args.epochs, "batch_size": settings.batch_size},
        "throughput": runs,
    }
    if not args.no_retrain:
        fmt = handbook_examples(format_only=True)
        train, holdout = [m for i, m in enumerate(fmt) if i % 5 != 4], [m for i, m in enumerate(fmt) if i % 5 == 4]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train_lora(train, holdout, TrainSettings(), Path(tmp) / "example", progress=False)
            wall = time.perf_counter() - t0
        report["retrain_example"] = {
            "train_examples": len(train),
            "holdout_examples": len(holdout),
            "wall_s": wall,
            "steps": res.steps,
            "stop_reason": res.stop_reason,
            "initial_holdout_loss": res.initial_holdout_loss,
            "best_holdout_loss": res.best_holdout_loss,
            "cpu_s": res.cpu_seconds,
            "cost_usd": res.cost_usd,
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{len(data)} examples x {args.epochs} epochs, batch {settings.batch_size}, {torch.get_num_threads()} threads"
    )
    print(
        f"{'system':58} {'tokens':>7} {'steps':>5} {'mean loss':>9} {'train s':>8} {'wall s':>8} {'tok/s':>7} "
        f"{'ours/this':>9}"
    )
    for r in runs:
        print(
            f"{r['system']:58} {r['tokens']:>7} {r['steps']:>5} {r['mean_loss']:>9.3f} {r['train_s']:>8.1f} "
            f"{r['wall_s']:>8.1f} "
            f"{r['tokens_per_s']:>7.1f} {r['ours_vs_this']:>8.2f}x"
        )
    if "retrain_example" in report:
        ex = report["retrain_example"]
        print(
            f"retrain the example adapter ({ex['train_examples']} train, {ex['holdout_examples']} holdout, default "
            f"[train]): {ex['wall_s']:.1f} s wall, {ex['steps']} steps ({ex['stop_reason']}), holdout loss "
            f"{ex['initial_holdout_loss']:.3f} -> {ex['best_holdout_loss']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 6's target: on the example's format cases, the LoRA adapter's format compliance on held-out cases against
closed-book and the best prompt variant, and its content accuracy; plus the time to retrain the example adapter.

    .venv/bin/python bench/adapter_format.py                 # [train] defaults (3 epochs)
    .venv/bin/python bench/adapter_format.py --epochs 2 --json

A project with the handbook as of week 1 (as `ragtune demo` ingests it) builds the data set 'style' from the
example's train-style.jsonl, screened for leakage against the bundled cases (so no near-copy of an evaluated
question trains the model), trains v1, and evaluates the bundled cases that have a format rule (the held-out
format cases: 6 styled answers, 4 ticket triages) over closed-book, prompts (the demo's variants: plain, the style
guide as a prompt, and the same with two examples) and adapter:v1. Greedy decoding, fixed seeds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ragtune.demo import DEMO_MAX_NEW_TOKENS, DEMO_PROMPTS, example_dir, ingest_week
from ragtune.harness.runs import execute_run, summarize_run
from ragtune.project import Project, init_project
from ragtune.tuning import build_dataset
from ragtune.tuning.train import TrainSettings
from ragtune.tuning.versions import train_version

ARMS = ["closed-book", "prompts", "adapter:v1"]


def run(folder: Path, epochs: int | None) -> dict[str, Any]:
    example = example_dir()
    root, _ = init_project(folder)
    toml = root / "ragtune.toml"
    text = toml.read_text(encoding="utf-8").replace("max_new_tokens = 160", f"max_new_tokens = {DEMO_MAX_NEW_TOKENS}", 1)  # fmt: skip
    toml.write_text(text + DEMO_PROMPTS, encoding="utf-8")
    project = Project.open(root)
    timeline = json.loads((example / "timeline.json").read_text(encoding="utf-8"))
    sources = json.loads((example / "sources.json").read_text(encoding="utf-8"))
    ingest_week(project, example, root, timeline["weeks"][0], sources)
    cases = [line for line in (example / "cases.jsonl").read_text(encoding="utf-8").splitlines() if '"format"' in line]
    cases_path = root / "format-cases.jsonl"
    cases_path.write_text("\n".join(cases) + "\n", encoding="utf-8")
    data = build_dataset(project, "style", jsonl=[example / "train-style.jsonl"], eval_cases=[example / "cases.jsonl"])
    settings = TrainSettings.from_config(project.config)
    if epochs:
        settings = settings.model_copy(update={"epochs": epochs})
    t0 = time.perf_counter()
    version = train_version(project, "style", settings=settings, progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    execute_run(project, cases_path, ARMS, name="format")
    eval_s = time.perf_counter() - t0
    summary = summarize_run(project, "format")["arms"]
    variants = summary["prompts"]["variants"]
    best = max(variants, key=lambda v: variants[v]["format_ok"]["value"] or 0.0)
    fmt = {
        "closed-book": summary["closed-book"]["format_ok"]["value"],
        f"prompts/{best} (best variant)": variants[best]["format_ok"]["value"],
        "adapter:v1": summary["adapter:v1"]["format_ok"]["value"],
    }
    acc = {
        "closed-book": summary["closed-book"]["accuracy"]["value"],
        f"prompts/{best} (best variant)": variants[best]["accuracy"]["value"],
        "adapter:v1": summary["adapter:v1"]["accuracy"]["value"],
    }
    adapter_fmt, adapter_acc = fmt["adapter:v1"] or 0.0, acc["adapter:v1"] or 0.0
    others = [k for k in fmt if k != "adapter:v1"]
    margin = min(adapter_fmt - (fmt[k] or 0.0) for k in others)
    acc_loss = max((acc[k] or 0.0) - adapter_acc for k in others)
    return {
        "cases": len(cases),
        "format_ok": fmt,
        "accuracy": acc,
        "variants": variants,
        "format_margin_points": round(100 * margin, 1),
        "accuracy_loss_points": round(100 * acc_loss, 1),
        "targets": {
            "format_margin_ge_20": margin >= 0.2,
            "accuracy_loss_le_2": acc_loss <= 0.02,
            "retrain_under_5_min": version.result["wall_seconds"] < 300,
        },
        "data": {"kept": data.kept, "train": data.train, "holdout": data.holdout, "excluded": data.excluded},
        "training": {
            k: version.result[k]
            for k in (
                "steps",
                "epochs_run",
                "stop_reason",
                "initial_holdout_loss",
                "best_holdout_loss",
                "train_tokens",
                "tokens_per_second",
                "wall_seconds",
                "cpu_seconds",
                "cost_usd",
            )
        },
        "train_version_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="override [train] epochs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp) / "p", args.epochs or None)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['cases']} held-out format cases; data set: {result['data']}")
    print(f"{'arm':<34} {'format ok':>10} {'accuracy':>10}")
    for arm, value in result["format_ok"].items():
        a = result["accuracy"][arm]
        print(f"{arm:<34} {value:>10.0%} {'-' if a is None else f'{a:.0%}':>10}")
    print(f"format margin of the adapter: {result['format_margin_points']} points; accuracy loss: "
          f"{result['accuracy_loss_points']} points; targets: {result['targets']}")  # fmt: skip
    print(f"training: {result['training']}")


if __name__ == "__main__":
    main()

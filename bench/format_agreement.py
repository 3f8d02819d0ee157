"""Agreement of ragtune's ``format`` scorer (IFEval rules) with IFEval's own pass/fail labels, per instruction.

    .venv/bin/python bench/format_agreement.py [--data ../shared/data/ifeval] [--json]

Data (see MANIFEST.md there): IFEval prompts with their instructions (input_data.jsonl), GPT-4 responses, and the
strict and loose labels google-research's checker gave them. Each response is scored once as a case answer; the
score's per-instruction strict and loose verdicts are compared with the labels (strict with strict, loose with
loose). Instructions the scorer leaves unchecked (with a reason) are counted apart, not as agreement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ragtune.harness.model import Case, FormatSpec, IfevalSpec, Output
from ragtune.harness.scorers import SCORERS, ScoringContext, ScoringSettings
from ragtune.harness.scorers.ifeval import punkt_installed

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ifeval"
TARGET = 0.97


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def agreement(data: Path, settings: ScoringSettings | None = None) -> dict[str, Any]:
    """Score every labelled response and tally agreement with the labels per instruction id."""
    prompts = {row["prompt"]: row for row in _jsonl(data / "input_data.jsonl")}
    responses = {row["prompt"]: row["response"] for row in _jsonl(next((data / "responses").glob("input_response_*")))}
    strict = _jsonl(data / "responses" / "eval_results_strict_gpt4.jsonl")
    loose = {row["prompt"]: row for row in _jsonl(data / "responses" / "eval_results_loose_gpt4.jsonl")}
    ctx = ScoringContext(settings=settings or ScoringSettings())
    tally: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "unchecked": 0, "strict_agree": 0, "loose_agree": 0, "compared": 0, "disagreements": []}
    )
    prompt_level = {"n": 0, "strict_agree": 0, "loose_agree": 0}
    started = time.perf_counter()
    for labels in strict:
        item = prompts[labels["prompt"]]
        answer = responses[labels["prompt"]]
        if labels["response"] != answer or labels["instruction_id_list"] != item["instruction_id_list"]:
            raise SystemExit(f"key {item['key']}: the label files do not match the prompt or the response")
        case = Case(
            id=str(item["key"]),
            question=item["prompt"],
            format=FormatSpec(
                ifeval=IfevalSpec(instruction_id_list=item["instruction_id_list"], kwargs=item["kwargs"])
            ),
        )
        score = SCORERS["format"](case, Output(case.id, "gpt4", answer), ctx)
        assert score is not None and "instructions" in score.details, (case.id, score)
        verdicts = score.details["instructions"]
        loose_labels = loose[labels["prompt"]]["follow_instruction_list"]
        for verdict, want_strict, want_loose in zip(
            verdicts, labels["follow_instruction_list"], loose_labels, strict=True
        ):
            row = tally[verdict["id"]]
            row["n"] += 1
            if verdict["strict"] is None:
                row["unchecked"] += 1
                row["disagreements"].append({"key": item["key"], "unchecked": verdict["note"]})
                continue
            row["compared"] += 1
            row["strict_agree"] += verdict["strict"] == want_strict
            row["loose_agree"] += verdict["loose"] == want_loose
            if verdict["strict"] != want_strict or verdict["loose"] != want_loose:
                row["disagreements"].append(
                    {
                        "key": item["key"],
                        "strict": [verdict["strict"], want_strict],
                        "loose": [verdict["loose"], want_loose],
                    }
                )
        ours_strict = all(v["strict"] for v in verdicts if v["strict"] is not None)
        ours_loose = all(v["loose"] for v in verdicts if v["loose"] is not None)
        prompt_level["n"] += 1
        prompt_level["strict_agree"] += ours_strict == labels["follow_all_instructions"]
        prompt_level["loose_agree"] += ours_loose == loose[labels["prompt"]]["follow_all_instructions"]

    per_id = {}
    for iid, row in sorted(tally.items()):
        compared = row["compared"]
        row["strict"] = round(row["strict_agree"] / compared, 4) if compared else None
        row["loose"] = round(row["loose_agree"] / compared, 4) if compared else None
        per_id[iid] = row
    compared = sum(r["compared"] for r in per_id.values())
    return {
        "responses": len(strict),
        "instructions": sum(r["n"] for r in per_id.values()),
        "compared": compared,
        "unchecked": sum(r["unchecked"] for r in per_id.values()),
        "strict": round(sum(r["strict_agree"] for r in per_id.values()) / compared, 4),
        "loose": round(sum(r["loose_agree"] for r in per_id.values()) / compared, 4),
        "prompt_level": {
            "n": prompt_level["n"],
            "strict": round(prompt_level["strict_agree"] / prompt_level["n"], 4),
            "loose": round(prompt_level["loose_agree"] / prompt_level["n"], 4),
        },
        "min_strict": min(r["strict"] for r in per_id.values() if r["strict"] is not None),
        "min_loose": min(r["loose"] for r in per_id.values() if r["loose"] is not None),
        "punkt_installed": punkt_installed(),
        "seconds": round(time.perf_counter() - started, 2),
        "per_instruction": per_id,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ifeval folder (MANIFEST.md)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument(
        "--no-punkt-fallback", action="store_true", help="leave sentence-counting instructions unchecked without punkt"
    )
    args = parser.parse_args(argv)
    if not (args.data / "input_data.jsonl").is_file():
        print(f"{args.data}: no IFEval data (input_data.jsonl) there", file=sys.stderr)
        return 2
    result = agreement(args.data, ScoringSettings(punkt_fallback=not args.no_punkt_fallback))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'instruction id':<46} {'n':>4} {'checked':>7} {'strict':>7} {'loose':>7}")
    for iid, row in result["per_instruction"].items():
        flag = "" if (row["strict"] or 0) >= TARGET and (row["loose"] or 0) >= TARGET else "  < target"
        cells = [f"{row[m]:.4f}" if row[m] is not None else "-" for m in ("strict", "loose")]
        print(f"{iid:<46} {row['n']:>4} {row['compared']:>7} {cells[0]:>7} {cells[1]:>7}{flag}")
    print(
        f"\n{result['compared']} of {result['instructions']} instructions checked ({result['unchecked']} unchecked) "
        f"in {result['responses']} responses: strict {result['strict']:.4f}, loose {result['loose']:.4f}; "
        f"per-id minimum strict {result['min_strict']:.4f}, loose {result['min_loose']:.4f}; prompt level strict "
        f"{result['prompt_level']['strict']:.4f}, loose {result['prompt_level']['loose']:.4f}; "
        f"punkt_tab installed: {result['punkt_installed']}; {result['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

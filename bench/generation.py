"""Generation tokens/s of the local backends, side by side on the same prompts and the same GGUF.

    .venv/bin/python bench/generation.py                                  # RAG and short prompts, answers end on their own
    .venv/bin/python bench/generation.py --fixed 64                       # every answer exactly 64 tokens (equal work)
    .venv/bin/python bench/generation.py --batch-sizes 1,8,16,32 --rounds 2 --json > bench/out/generation.json
    .venv/bin/python bench/generation.py --batch-sizes 8,32 --with-generate  # ragtune's decoder against generate

Systems: ``llama-cpp`` (LlamaCppGenerator, one prompt at a time: llama-cpp-python has no batched chat API) and
``smollm2 bN`` (TransformersGenerator over the dequantized fp32 cache of the same GGUF, N prompts per batch; 16 is
the harness's default ``[generator] batch_size``). Greedy decoding, ``max_new_tokens`` 160 as configured by default.

Prompts: "rag" are the prompts ``ragtune ask`` builds (retrieval, context assembly, ``rag_messages``) for the
handbook questions of ``timeline.json`` over a project holding the handbook as of week 1 (600 to 1,000 prompt
tokens); "short" are the same questions closed-book (about 50 tokens).

The machine is shared: a set is measured in units (one prompt for llama-cpp, one batch for smollm2, the batches
its ``generate`` would form itself: prompts sorted by length, then cut), each run after the rest of the machine
has been quiet for a second and run again (up to ``--tries`` times, keeping the fastest) when other processes used
more than 0.15 of a core meanwhile; units still disturbed after that are counted in the table. Rounds repeat the
whole comparison in a rotated system order; the table keeps each system's fastest round.
Generated tokens are ``Generation.tokens_out`` (stop tokens excluded), prompt tokens ``Generation.tokens_in``,
both over the summed wall time of the units. In ``--fixed`` mode stop tokens are banned, so both backends write
exactly the same number of tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))
from ask_latency import build_week1, handbook_facts, measured

from ragtune.config import GeneratorSection
from ragtune.generation.base import Generator, Message
from ragtune.generation.local import (
    SMOLLM2_NAME,
    LlamaCppGenerator,
    TransformersGenerator,
    dequantized_folder,
    smollm2_gguf,
)

Prompts = list[list[Message]]


class _ForcedTransformers(TransformersGenerator):
    """No stop tokens: every answer runs to the token limit."""

    def _stops(self) -> set[int]:
        return set()


class _ForcedLlamaCpp(LlamaCppGenerator):
    """Stop tokens banned through a logit bias: every answer runs to the token limit."""

    def _complete(self, messages: Sequence[Message], limit: int) -> dict[str, Any]:
        llm = self.llm
        banned = {int(llm.token_eos())} | {
            t for name in ("<|im_end|>", "<|endoftext|>") for t in llm.tokenize(name.encode(), False, True)
        }
        reply: dict[str, Any] = llm.create_chat_completion(
            messages=list(messages),
            max_tokens=limit,
            temperature=0.0,
            top_k=1,
            seed=self.settings.seed,
            logit_bias=dict.fromkeys(banned, -1e9),
        )
        return reply


def build_prompts(project_dir: Path, generator: Generator, n: int) -> dict[str, Prompts]:
    """The RAG prompts `ragtune ask` would send for each handbook question, and the same questions closed-book."""
    from ragtune.answer.context import assemble
    from ragtune.answer.prompt import closed_book_messages, rag_messages
    from ragtune.index.index import Filters
    from ragtune.project import Project
    from ragtune.retrieval.search import Retriever

    project = Project.open(project_dir)
    settings = project.config.answer
    retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    rag, short = [], []
    for fact in handbook_facts(n):
        hits = retriever.search(fact.question, settings.sources, Filters(groups=fact.groups)).hits
        context = assemble(hits, settings.context_tokens, generator.count_tokens, settings.dedupe_overlap)
        rag.append(rag_messages(fact.question, context.sources))
        short.append(closed_book_messages(fact.question))
    project.close()
    return {"rag": rag, "short": short}


def units(generator: Generator, prompts: Prompts, batch: int) -> list[list[int]]:
    """The prompt indices of each generate call: one prompt for llama-cpp; for transformers the batches its own
    ``generate`` would form over the whole set (sorted by prompt length, then cut every ``batch``)."""
    if not isinstance(generator, TransformersGenerator):
        return [[i] for i in range(len(prompts))]
    lengths = [generator.count_prompt(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    return [order[s : s + batch] for s in range(0, len(order), batch)]


def run_set(generator: Generator, prompts: Prompts, batch: int, limit: int, tries: int) -> dict[str, Any]:
    """Every unit of the set measured undisturbed if possible; totals over the units."""
    texts: list[str] = [""] * len(prompts)
    wall = cpu = 0.0
    tokens_in = tokens_out = at_limit = disturbed = runs = 0
    for unit in units(generator, prompts, batch):
        chunk = [prompts[i] for i in unit]
        gens, meter, n = measured(partial(generator.generate, chunk, max_new_tokens=limit), tries)
        runs += n
        wall += meter.wall
        cpu += meter.cpu * meter.wall
        disturbed += meter.others >= 0.15
        for i, g in zip(unit, gens, strict=True):
            texts[i] = g.text
            tokens_in += g.tokens_in
            tokens_out += g.tokens_out
            at_limit += g.finish_reason == "length"
    return {
        "wall_s": round(wall, 2),
        "cpu_share": round(cpu / wall, 2),
        "tokens_out": tokens_out,
        "tokens_in": tokens_in,
        "gen_tok_s": round(tokens_out / wall, 1),
        "prompt_tok_s": round(tokens_in / wall, 1),
        "at_limit": at_limit,
        "units_disturbed": disturbed,
        "runs": runs,
        "texts": texts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="an existing week-1 handbook project (default: build one)")
    parser.add_argument("-n", type=int, default=40, help="questions (default 40)")
    parser.add_argument("--batch-sizes", default="1,8,16,32", help="smollm2 batch sizes (default 1,8,16,32)")
    parser.add_argument("--sets", default="rag,short", help="prompt sets (default rag,short)")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="token limit per answer (default 160)")
    parser.add_argument("--fixed", type=int, default=0, help="ban stop tokens and write exactly this many tokens")
    parser.add_argument("--rounds", type=int, default=1, help="passes over every system (default 1)")
    parser.add_argument(
        "--with-generate",
        action="store_true",
        help="also time transformers' own generate on the same batches (the decoder's peer, issue 13 point 5)",
    )
    parser.add_argument("--tries", type=int, default=4, help="runs of a disturbed unit at most (default 4)")
    parser.add_argument("--json", action="store_true", help="print JSON (every round included)")
    args = parser.parse_args()
    limit = args.fixed or args.max_new_tokens
    sizes = [int(b) for b in args.batch_sizes.split(",") if b]

    section = GeneratorSection(max_new_tokens=limit)
    smol_cls = _ForcedTransformers if args.fixed else TransformersGenerator
    llama_cls = _ForcedLlamaCpp if args.fixed else LlamaCppGenerator
    gguf = smollm2_gguf()
    smol = smol_cls(dequantized_folder(gguf), name=SMOLLM2_NAME, settings=section, source=str(gguf))
    llama = llama_cls(gguf, GeneratorSection(backend="llama-cpp", max_new_tokens=limit), name=SMOLLM2_NAME)

    with tempfile.TemporaryDirectory(prefix="ragtune-gen-bench-") as tmp:
        project = args.project or build_week1(Path(tmp) / "handbook")
        prompt_sets = {k: v for k, v in build_prompts(project, smol, args.n).items() if k in args.sets.split(",")}

    systems: list[tuple[str, Generator, int]] = [("llama-cpp", llama, 1)] + [(f"smollm2 b{b}", smol, b) for b in sizes]
    if args.with_generate:  # the same weights through transformers' own generate, batch for batch
        plain = smol_cls(dequantized_folder(gguf), name=SMOLLM2_NAME, settings=section, source=str(gguf))
        plain.fast_decoder = False
        systems += [(f"generate b{b}", plain, b) for b in sizes]
    for _, gen, _ in systems:  # load both models and touch every code path before timing anything
        gen.generate(prompt_sets[next(iter(prompt_sets))][:2], max_new_tokens=4)

    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = systems[r % len(systems) :] + systems[: r % len(systems)]
        for set_name, prompts in prompt_sets.items():
            for name, gen, batch in order:
                if isinstance(gen, TransformersGenerator):
                    gen.settings = gen.settings.model_copy(update={"batch_size": batch})
                res = run_set(gen, prompts, batch, limit, args.tries)
                rounds.append({"round": r, "set": set_name, "system": name, **res})
                print(
                    f"round {r} {set_name:<5} {name:<12} {res['wall_s']:7.1f} s  {res['gen_tok_s']:6.1f} tok/s  "
                    f"cpu {res['cpu_share']:.2f}  disturbed units {res['units_disturbed']}, runs {res['runs']}",
                    file=sys.stderr,
                    flush=True,
                )

    table = summarize(rounds, prompt_sets)
    if args.json:
        rows_out = [{k: v for k, v in r.items() if k != "texts"} for r in rounds]
        print(json.dumps({"mode": _mode(args), "table": table, "rounds": rows_out}, indent=2))
    else:
        print(render(table, _mode(args)))


def _mode(args: argparse.Namespace) -> str:
    return (
        f"exactly {args.fixed} tokens per answer"
        if args.fixed
        else f"answers end on their own, at most {args.max_new_tokens} tokens"
    )


def summarize(rounds: list[dict[str, Any]], prompt_sets: dict[str, Prompts]) -> list[dict[str, Any]]:
    """Each system's fastest round per prompt set, with ratios against llama-cpp on the same prompts, and how many
    answers it wrote word for word like llama-cpp and like the first smollm2 batch size (round 0)."""
    table = []
    for set_name in prompt_sets:
        runs = [r for r in rounds if r["set"] == set_name]
        best: dict[str, dict[str, Any]] = {}
        for r in runs:
            if r["system"] not in best or r["wall_s"] < best[r["system"]]["wall_s"]:
                best[r["system"]] = r
        base = best["llama-cpp"]
        first = {r["system"]: r["texts"] for r in runs if r["round"] == 0}
        smol = next((t for name, t in first.items() if name.startswith("smollm2")), first["llama-cpp"])
        for system, r in best.items():
            walls = [x["wall_s"] for x in runs if x["system"] == system]
            table.append(
                {
                    "set": set_name,
                    "system": system,
                    "prompts": len(prompt_sets[set_name]),
                    "tokens_in": r["tokens_in"],
                    "tokens_out": r["tokens_out"],
                    "at_limit": r["at_limit"],
                    "wall_s": r["wall_s"],
                    "median_wall_s": round(statistics.median(walls), 2),
                    "gen_tok_s": r["gen_tok_s"],
                    "prompt_tok_s": r["prompt_tok_s"],
                    "cpu_share": r["cpu_share"],
                    "units_disturbed": r["units_disturbed"],
                    "x_llama_gen_tok_s": round(r["gen_tok_s"] / base["gen_tok_s"], 2),
                    "x_llama_time": round(base["wall_s"] / r["wall_s"], 2),
                    "same_as_llama": sum(a == b for a, b in zip(first[system], first["llama-cpp"], strict=True)),
                    "same_as_first_smollm2": sum(a == b for a, b in zip(first[system], smol, strict=True)),
                }
            )
    return table


def render(table: list[dict[str, Any]], mode: str) -> str:
    head = (
        f"{'prompts':<7} {'system':<12} {'in tok':>7} {'out tok':>7} {'at max':>6} {'best s':>7} {'median s':>8} "
        f"{'gen tok/s':>9} {'prompt tok/s':>12} {'x llama tok/s':>13} {'x llama time':>12} {'cpu':>5} "
        f"{'disturbed':>9} {'=llama':>6} {'=smol':>6}"
    )
    lines = [
        f"Generation, {mode}; fastest round; ratios against llama-cpp on the same prompts; "
        "=llama / =smol: answers word for word like llama-cpp's / like the first smollm2 batch size's",
        head,
    ]
    for r in table:
        lines.append(
            f"{r['set']:<7} {r['system']:<12} {r['tokens_in']:>7} {r['tokens_out']:>7} {r['at_limit']:>6} "
            f"{r['wall_s']:>7.1f} {r['median_wall_s']:>8.1f} {r['gen_tok_s']:>9.1f} {r['prompt_tok_s']:>12.1f} "
            f"{r['x_llama_gen_tok_s']:>12.2f}x {r['x_llama_time']:>11.2f}x {r['cpu_share']:>5.2f} "
            f"{r['units_disturbed']:>9} {r['same_as_llama']:>6} {r['same_as_first_smollm2']:>6}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

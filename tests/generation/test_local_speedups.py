"""The fast greedy path of TransformersGenerator: same tokens as transformers' generate, batch-independent.

Tiny random models check the decoding logic against transformers itself; the slow test checks the packaged
SmolLM2 (the speed-up is measured in bench/generation.py, figures in docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ragtune.generation.local import PREFILL_TOKENS, _greedy, _prefill_chunks  # noqa: E402


def _tiny(kind: str = "llama") -> Any:
    torch.manual_seed(0)
    common = {
        "vocab_size": 97,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    }
    if kind == "mistral":
        config = transformers.MistralConfig(**common, sliding_window=8)
        return transformers.MistralForCausalLM(config).eval()
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common)).eval()


def _hf(model: Any, rows: list[list[int]], limit: int, stops: set[int]) -> list[list[int]]:
    """transformers' own greedy generate over a left-padded batch, trimmed at the first stop token."""
    width = max(map(len, rows))
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=limit,
            do_sample=False,
            eos_token_id=sorted(stops) or None,
            pad_token_id=0,
        )
    return [_trim(row, stops) for row in out[:, width:].tolist()]


def _trim(row: list[int], stops: set[int]) -> list[int]:
    cut = next((j for j, t in enumerate(row) if t in stops), None)
    return row if cut is None else row[: cut + 1]


ROWS = [[5, 6, 7], [11, 12, 13, 14, 15, 16, 17, 18, 19], [3, 1, 4, 1, 5, 9], [2, 7]]


def test_greedy_writes_what_transformers_generate_writes() -> None:
    model = _tiny()
    expected = _hf(model, ROWS, 12, set())
    got = _greedy(model, ROWS, 12, set())
    assert got is not None
    assert [_trim(r, set()) for r in got] == expected
    assert all(len(r) == 12 for r in got)


def test_a_row_that_stops_leaves_the_batch_without_changing_the_others() -> None:
    model = _tiny()
    free = _greedy(model, ROWS, 12, set())
    assert free is not None
    # make the second row's fourth token a stop token: it ends there, the others write the same as before
    stop = free[1][3]
    got = _greedy(model, ROWS, 12, {stop})
    assert got is not None
    assert got == [_trim(r, {stop}) for r in free]
    assert got == _hf(model, ROWS, 12, {stop})


def test_each_row_decodes_as_it_would_alone() -> None:
    model = _tiny()
    together = _greedy(model, ROWS, 8, set())
    alone = [_greedy(model, [r], 8, set()) for r in ROWS]
    assert together == [a[0] for a in alone if a is not None]


def test_models_with_other_caches_fall_back_to_transformers() -> None:
    assert _greedy(_tiny("mistral"), ROWS, 4, set()) is None


def test_prefill_chunks_pack_short_prompts_and_keep_long_ones_alone() -> None:
    short = [[1] * 40] * 16
    assert [(first, len(chunk)) for first, chunk in _prefill_chunks(short)] == [(0, 16)]
    long = [[1] * 900] * 5
    assert [(first, len(chunk)) for first, chunk in _prefill_chunks(long)] == [(0, 2), (2, 2), (4, 1)]
    huge = [[1] * (PREFILL_TOKENS + 1), [1] * (PREFILL_TOKENS + 5)]
    assert [(first, len(chunk)) for first, chunk in _prefill_chunks(huge)] == [(0, 1), (1, 1)]
    mixed = [[1] * n for n in (10, 20, 600, 700, 1100)]
    chunks = _prefill_chunks(mixed)
    assert [r for _, chunk in chunks for r in chunk] == mixed  # order kept, nothing lost
    assert all(len(chunk) * max(map(len, chunk)) <= PREFILL_TOKENS or len(chunk) == 1 for _, chunk in chunks)


@pytest.mark.slow
def test_smollm2_fast_path_matches_transformers_generate(generator: Any) -> None:
    batch = [
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        [{"role": "user", "content": "Name a colour."}],
        [
            {"role": "system", "content": "You answer questions using only the sources. " * 20},
            {"role": "user", "content": "Sources: [1] The Pro plan allows 100 seats.\n\nQuestion: How many seats?"},
        ],
    ]
    fast = generator.generate(batch, max_new_tokens=16)
    tok = generator.tokenizer
    rows = [tok(generator.render(m), add_special_tokens=False)["input_ids"] for m in batch]
    stops = generator._stops()
    reference = generator._hf_generate(rows, 16, stops)
    texts = [tok.decode(_trim(r, stops), skip_special_tokens=True).strip() for r in reference]
    assert [g.text for g in fast] == texts

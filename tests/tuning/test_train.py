"""train_lora on a tiny random Llama with SmolLM2's tokenizer: outputs, determinism, resume, early stopping, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ragtune.config import parse_config
from ragtune.errors import TuningError
from ragtune.tuning.train import StepInfo, TrainSettings, train_lora
from tests.tuning.conftest import format_examples

FAST = {"epochs": 3, "batch_size": 4, "checkpoint_every": 3, "learning_rate": 5e-3, "lora_r": 4, "lora_alpha": 8}


def _adapter_weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _adapter_weights(a), _adapter_weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_train_writes_adapter_result_and_servable(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train_lora(
        format_examples(16), format_examples(4, 50), TrainSettings(**FAST), out, base=str(tiny_base), progress=False
    )
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "result.json"]  # checkpoints go once whole
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "tokenizer_config.json").is_file()
    saved = json.loads((out / "result.json").read_text())
    assert saved == json.loads(json.dumps(result.to_json()))
    assert result.steps == 12 and result.epochs_run == 3 and result.stop_reason == "epochs"
    assert len(result.train_losses) == 12 and [e["step"] for e in result.evals] == [0, 4, 8, 12]
    assert result.initial_holdout_loss is not None and result.best_holdout_loss is not None
    assert result.best_holdout_loss < result.initial_holdout_loss
    assert result.train_tokens > result.target_tokens > 0
    assert result.tokens_per_second > 0 and result.cpu_seconds > 0 and result.cost_usd > 0
    assert len(result.template_sha256) == 64 and result.device == "cpu"
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]

    # servable: the generator the arms use loads base + adapter and answers
    from ragtune.config import GeneratorSection
    from ragtune.generation.local import TransformersGenerator

    gen = TransformersGenerator(tiny_base, adapter=out / "adapter", settings=GeneratorSection(max_new_tokens=4))
    answers = gen.generate([[{"role": "user", "content": "What is 1 plus 2?"}]])
    assert answers[0].tokens_out >= 1


def test_same_data_and_seed_same_run(tiny_base: Path, tmp_path: Path) -> None:
    args = (format_examples(12), format_examples(4, 50))
    first = train_lora(*args, TrainSettings(**FAST), tmp_path / "a", base=str(tiny_base), progress=False)
    second = train_lora(*args, TrainSettings(**FAST), tmp_path / "b", base=str(tiny_base), progress=False)
    assert first.train_losses == second.train_losses and first.evals == second.evals
    assert _same_weights(tmp_path / "a" / "adapter", tmp_path / "b" / "adapter")
    other = train_lora(*args, TrainSettings(**FAST, seed=1), tmp_path / "c", base=str(tiny_base), progress=False)
    assert other.train_losses != first.train_losses


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_result(tiny_base: Path, tmp_path: Path) -> None:
    args = (format_examples(18), format_examples(4, 50))
    settings = TrainSettings(**{**FAST, "eval_every": 2, "patience": 10})
    whole = train_lora(*args, settings, tmp_path / "whole", base=str(tiny_base), progress=False)

    def kill_at_8(info: StepInfo) -> None:
        if info.step == 8:  # the newest checkpoint is step 6: steps 7 and 8 are lost and redone
            raise _Killed

    out = tmp_path / "killed"
    with pytest.raises(_Killed):
        train_lora(*args, settings, out, base=str(tiny_base), progress=False, callback=kill_at_8)
    assert not (out / "adapter").exists() and not (out / "result.json").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000003", "step-00000006"]

    resumed = train_lora(*args, settings, out, base=str(tiny_base), progress=False)
    assert resumed.resumed_from_step == 6
    assert resumed.train_losses == whole.train_losses
    assert resumed.evals == whole.evals
    assert resumed.steps == whole.steps and resumed.train_tokens == whole.train_tokens
    assert _same_weights(out / "adapter", tmp_path / "whole" / "adapter")


def test_resume_refuses_checkpoints_of_another_run(tiny_base: Path, tmp_path: Path) -> None:
    def stop(info: StepInfo) -> None:
        if info.step == 4:
            raise _Killed

    out = tmp_path / "run"
    with pytest.raises(_Killed):
        train_lora(
            format_examples(12), [], TrainSettings(**FAST), out, base=str(tiny_base), progress=False, callback=stop
        )
    with pytest.raises(TuningError, match="checkpoints of a different run"):
        train_lora(format_examples(12), [], TrainSettings(**FAST, seed=3), out, base=str(tiny_base), progress=False)
    fresh = train_lora(
        format_examples(12), [], TrainSettings(**FAST, seed=3), out, base=str(tiny_base), progress=False, resume=False
    )
    assert fresh.resumed_from_step is None and fresh.steps == 9
    assert fresh.best_holdout_loss is None and fresh.best_step == 9  # no holdout: the last weights


def _holdout_loss_of(base: Path, adapter: Path, holdout: list[list[dict[str, str]]]) -> float:
    """The adapter's holdout loss computed independently: transformers' own forward and loss, padded batch."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.tuning.template import encode_examples

    tok = AutoTokenizer.from_pretrained(str(base))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter)).eval()
    total, count = 0.0, 0
    for row in encode_examples(tok, holdout, 256, "holdout"):
        labels = torch.full((1, len(row.ids)), -100)
        labels[0, row.targets] = torch.tensor([row.ids[p] for p in row.targets])
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([row.ids]), labels=labels).loss
        total += float(loss) * len(row.targets)
        count += len(row.targets)
    return total / count


def test_early_stopping_keeps_the_best_adapter_not_the_last(tiny_base: Path, tmp_path: Path) -> None:
    # training teaches "yes", the holdout wants "no" to the same questions: holdout loss falls while the shared
    # tokens (the end marker) are learnt, then rises; training stops after `patience` worse evaluations
    def conv(answer: str, i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"Is {i} a number?"}, {"role": "assistant", "content": answer}]

    train = [conv("yes", i) for i in range(16)]
    holdout = [conv("no", i) for i in range(4)]
    settings = TrainSettings(**{**FAST, "epochs": 20, "eval_every": 2, "patience": 2, "learning_rate": 5e-2})
    result = train_lora(train, holdout, settings, tmp_path / "run", base=str(tiny_base), progress=False)
    assert result.stop_reason == "early_stopping"
    losses = [e["holdout_loss"] for e in result.evals]
    assert result.best_step < result.steps and result.best_holdout_loss == min(losses) < losses[-1]
    assert [e["step"] for e in result.evals][-3:] == [result.best_step, result.best_step + 2, result.steps]
    # the saved adapter is the best one: an independent loss computation on it gives the best loss, not the last
    measured = _holdout_loss_of(tiny_base, tmp_path / "run" / "adapter", holdout)
    assert measured == pytest.approx(result.best_holdout_loss, abs=1e-4)
    assert measured != pytest.approx(losses[-1], abs=1e-4)


def test_max_steps(tiny_base: Path, tmp_path: Path) -> None:
    result = train_lora(
        format_examples(16), [], TrainSettings(**FAST, max_steps=5), tmp_path / "r", base=str(tiny_base), progress=False
    )
    assert result.steps == 5 and result.stop_reason == "max_steps" and result.epochs_run == 1.25


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ([[{"role": "user", "content": "hi"}]], "training example 1: the last message is the 'user' turn"),
        ([[{"role": "assistant", "content": "hi"}]], "only an assistant message"),
        ([[{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "x"}]], "over the limit"),
        ([], "no training examples"),
    ],
)
def test_bad_data_is_one_line_and_leaves_no_adapter(
    tiny_base: Path, tmp_path: Path, train: list[list[dict[str, str]]], message: str
) -> None:
    with pytest.raises(TuningError, match=message) as err:
        train_lora(train, [], TrainSettings(**FAST), tmp_path / "run", base=str(tiny_base), progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "adapter").exists()


def test_missing_base(tmp_path: Path) -> None:
    with pytest.raises(TuningError, match="base model not found"):
        train_lora(format_examples(2), [], TrainSettings(), tmp_path / "run", base=str(tmp_path / "nope"))


def test_out_of_memory_is_a_tuning_error(tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtune.tuning import train as train_mod

    def boom(self: Any, rows: Any) -> float:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_mod._Trainer, "step", boom)
    with pytest.raises(TuningError, match="out of memory training on cpu at batch size 4"):
        train_lora(format_examples(8), [], TrainSettings(**FAST), tmp_path / "run", base=str(tiny_base), progress=False)
    assert not (tmp_path / "run" / "adapter").exists()


def test_template_that_renders_answers_differently_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    # the serving prompt ends in "<|im_start|>assistant\n" but a rendered answer starts "<|im_start|>bot\n"
    template = (base / "chat_template.jinja").read_text()
    (base / "chat_template.jinja").write_text(
        template.replace(
            "'<|im_start|>' + message['role']", "'<|im_start|>' + message['role'].replace('assistant', 'bot')"
        )
    )
    with pytest.raises(TuningError, match="breaks the train/serve match at turn 3: the serving prompt"):
        train_lora(format_examples(4), [], TrainSettings(**FAST), tmp_path / "run", base=str(base), progress=False)


def test_template_check_accepts_serving_render(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    from ragtune.generation.local import TransformersGenerator
    from ragtune.tuning.template import encode_example

    tok = AutoTokenizer.from_pretrained(str(tiny_base))
    example = format_examples(1)[0]
    enc = encode_example(tok, example, 256, "x")
    gen = TransformersGenerator(tiny_base)
    prompt = tok(gen.render(example[:-1]), add_special_tokens=False)["input_ids"]
    assert enc.ids[: len(prompt)] == prompt and enc.targets[0] == len(prompt)
    answer = tok.decode([enc.ids[p] for p in enc.targets])
    assert answer == example[-1]["content"] + "<|im_end|>\n"


def test_settings_from_config() -> None:
    config = parse_config({"train": {"epochs": 5, "lora_r": 8}, "costs": {"cpu_hour_usd": 0.2}})
    settings = TrainSettings.from_config(config)
    assert settings.epochs == 5 and settings.lora_r == 8 and settings.cpu_hour_usd == 0.2
    assert settings.batch_size == 8 and settings.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


_CHILD = """
import sys, time
from pathlib import Path
from ragtune.tuning.train import TrainSettings, train_lora
from tests.tuning.conftest import format_examples
from tests.tuning.test_train import FAST

def slow(info):
    if info.step >= 7:
        Path(sys.argv[2]).touch()
        time.sleep(60)  # killed here, between checkpoints

settings = TrainSettings(**{**FAST, "eval_every": 2, "patience": 10})
train_lora(format_examples(18), format_examples(4, 50), settings, Path(sys.argv[3]), base=sys.argv[1],
           progress=False, callback=slow)
"""


def test_sigkilled_process_resumes_to_the_same_result(tiny_base: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out, marker = tmp_path / "killed", tmp_path / "at-step-7"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tiny_base), str(marker), str(out)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the training process ended early"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert not (out / "adapter").exists()
    settings = TrainSettings(**{**FAST, "eval_every": 2, "patience": 10})
    args = (format_examples(18), format_examples(4, 50))
    resumed = train_lora(*args, settings, out, base=str(tiny_base), progress=False)
    whole = train_lora(*args, settings, tmp_path / "whole", base=str(tiny_base), progress=False)
    assert resumed.resumed_from_step == 6
    assert resumed.train_losses == whole.train_losses and resumed.evals == whole.evals
    assert _same_weights(out / "adapter", tmp_path / "whole" / "adapter")

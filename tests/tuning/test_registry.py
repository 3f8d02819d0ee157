"""The model registry on a real store: versions, gated promotion, alias history and rollback, tainting on forget,
lineage, and the adapter:/hybrid: arms answering through a real (tiny) base model with a real PEFT adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.corpus.forget import forget
from ragtune.corpus.lineage import document_lineage
from ragtune.errors import TuningError
from ragtune.tuning import build_dataset, load_dataset
from ragtune.tuning.registry import (
    alias_history,
    list_versions,
    next_version,
    promote,
    register_version,
    resolve,
    rollback,
)
from ragtune.tuning.release import gate
from tests.diagnosis.builders import Ans, case, write_run
from tests.server.conftest import serve  # noqa: F401  (fixture: the real uvicorn server the server tests use)
from tests.tuning.helpers import add_docs, chat, chat_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with the packaged SmolLM2 tokenizer (chat template included), saved as an HF folder."""
    from ragtune.generation.local import dequantized_folder, smollm2_gguf

    folder = tmp_path_factory.mktemp("tiny-base")
    tok = transformers.AutoTokenizer.from_pretrained(str(dequantized_folder(smollm2_gguf())))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def _adapter(base: Path, out: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base))
    lora = peft.get_peft_model(model, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))  # fmt: skip
    lora.save_pretrained(str(out))
    return out


@pytest.fixture
def registry(project: Any, docs: Path, tmp_path: Path, tiny_base: Path) -> Any:
    """Two versions trained (as far as the registry knows) on a data set made from docs/pricing.md and docs/faq.md."""
    add_docs(project, docs, {"pricing.md": "# Pricing\n\nThe Pro plan costs 30 euros.\n",
                             "faq.md": "# FAQ\n\nSupport answers within a day.\n"})  # fmt: skip
    lines = [chat("What does Pro cost?", "30 euros.", source={"doc_id": "docs/pricing.md"}),
             chat("How fast is support?", "Within a day.", source={"doc_id": "docs/faq.md"}),
             chat("Say hi.", "Hi.")]  # fmt: skip
    build_dataset(project, "fmt", jsonl=[chat_file(tmp_path / "train.jsonl", lines)], eval_cases=[])
    dataset = load_dataset(project, "fmt")
    for seed in (1, 2):
        version = next_version(project.store)
        folder = _adapter(tiny_base, project.root / ".ragtune" / "models" / version / "adapter", seed)
        register_version(project, version=version, adapter=folder, base=str(tiny_base), dataset=dataset,
                         settings={"seed": seed}, result={"wall_seconds": 12.5, "best_holdout_loss": 1.0})  # fmt: skip
    return project


CASE = case("price", "What does the Pro plan cost?", ["30 euros"], ["docs/pricing.md"])


def _scored_run(project: Any, tmp_path: Path, name: str, answers: dict[str, str]) -> None:
    """A finished run whose adapter arms answered as given (stored and scored the way execute_run stores them)."""
    write_run(project, tmp_path, name, list(answers), [(CASE, {arm: Ans(text) for arm, text in answers.items()})])


def test_versions_resolve_by_name_and_alias_with_lineage_of_documents(registry: Any) -> None:
    versions = list_versions(registry.store)
    assert [v.version for v in versions] == ["v1", "v2"]
    v1 = versions[0]
    assert v1.dataset == "fmt" and v1.dataset_digest == load_dataset(registry, "fmt").digest
    assert v1.adapter == ".ragtune/models/v1/adapter" and v1.created_by
    with pytest.raises(TuningError, match=r"no model version or alias 'v9' \(versions: v1, v2\)"):
        resolve(registry.store, "v9")
    models = document_lineage(registry, "docs/pricing.md")["models"]
    assert [(m["version"], m["dataset"], m["tainted"]) for m in models] == [("v1", "fmt", False), ("v2", "fmt", False)]


def test_promotion_is_gated_on_the_harness_and_forcing_is_recorded(registry: Any, tmp_path: Path, monkeypatch: Any) -> None:  # fmt: skip
    monkeypatch.setenv("RAGTUNE_USER", "ana")
    with pytest.raises(TuningError, match="v1 has no harness results: evaluate it first"):
        promote(registry, "v1", "production")
    _scored_run(registry, tmp_path, "r1", {"adapter:v1": "It costs 30 euros.", "adapter:v2": "It is free."})
    moved = promote(registry, "v1", "production")  # no current version: evaluated is enough
    assert (moved["previous"], moved["version"], moved["by"]) == (None, "v1", "ana")
    # v2 answered wrong where v1 was right: a 100-point accuracy drop against [registry] max_accuracy_drop
    with pytest.raises(TuningError, match=r"refused: adapter: accuracy 0.0% vs 100.0% for v1, a drop over"):
        promote(registry, "v2", "production")
    assert not gate(registry, "v2", "v1").ok
    with pytest.raises(TuningError, match="--force needs --reason"):
        promote(registry, "v2", "production", force=True)
    forced = promote(registry, "v2", "production", force=True, reason="hotfix for the format incident")
    assert forced["forced"] is True and resolve(registry.store, "production").version == "v2"
    history = alias_history(registry.store, "production")
    assert [(h["action"], h["previous"], h["version"], h["forced"], h["by"]) for h in history] == [
        ("promote", None, "v1", False, "ana"), ("promote", "v1", "v2", True, "ana")]  # fmt: skip
    assert history[1]["reason"] == "hotfix for the format incident"
    assert history[1]["gate"]["comparison"]["arms"]["adapter"]["current"]["accuracy"] == 1.0


def test_a_better_candidate_passes_and_rollback_is_one_command(registry: Any, tmp_path: Path) -> None:
    _scored_run(registry, tmp_path, "r1", {"adapter:v1": "It is free."})
    promote(registry, "v1", "production")
    # v2 is evaluated in a later run over the same case file: the gate compares it with v1's stored results
    _scored_run(registry, tmp_path, "r1b", {"adapter:v2": "30 euros."})
    assert gate(registry, "v2", "v1").comparison["arms"]["adapter"]["current_run"] == "r1"
    promote(registry, "v2", "production")
    back = rollback(registry, "production")
    assert (back["previous"], back["version"], back["action"]) == ("v2", "v1", "rollback")
    assert resolve(registry.store, "production").version == "v1"
    assert [h["action"] for h in alias_history(registry.store)] == ["promote", "promote", "rollback"]
    with pytest.raises(TuningError, match="no alias 'staging'"):
        rollback(registry, "staging")


def test_forget_taints_versions_trained_on_the_document_and_blocks_them(registry: Any, tmp_path: Path) -> None:
    _scored_run(registry, tmp_path, "r1", {"adapter:v1": "30 euros.", "adapter:v2": "30 euros."})
    promote(registry, "v1", "production")
    promote(registry, "v2", "production")
    receipt = forget(registry, ["docs/pricing.md"]).to_json()
    assert receipt["totals"]["models_tainted"] == 2
    listed = {m["version"]: m for m in receipt["models"]}
    assert listed["v2"]["aliases"] == ["production"] and listed["v1"]["documents"] == ["docs/pricing.md"]
    assert listed["v1"]["retrain"].startswith("ragtune tune train --data fmt")
    v1 = resolve(registry.store, "v1")
    assert v1.tainted is not None and v1.tainted["receipt"] == receipt["receipt_id"]
    with pytest.raises(TuningError, match="v1 is tainted: it was trained on forgotten data"):
        promote(registry, "v1", "staging", force=True, reason="please")
    with pytest.raises(TuningError, match="no earlier untainted version"):
        rollback(registry, "production")
    # the document's lineage still names the models trained on it, after it is gone
    models = document_lineage(registry, "docs/pricing.md")["models"]
    assert [(m["version"], m["tainted"]) for m in models] == [("v1", True), ("v2", True)]
    assert forget(registry, ["docs/faq.md"]).to_json()["totals"]["models_tainted"] == 2  # listed again, still tainted


def test_adapter_and_hybrid_arms_answer_with_the_fine_tune(registry: Any, tmp_path: Path) -> None:
    from ragtune.answer.pipeline import Answerer, Question
    from ragtune.harness.runs import execute_run, load_results, summarize_run

    registry.config.generator.max_new_tokens = 4
    cases = tmp_path / "c.jsonl"
    cases.write_text(json.dumps(CASE | {"as_of": None}) + "\n")  # asked now: the documents were ingested today
    promote(registry, "v1", "production", force=True, reason="first")
    execute_run(registry, cases, ["adapter:v1", "hybrid:production"], name="tuned")
    results = load_results(registry.store, "tuned")
    assert set(results) == {"adapter:v1", "hybrid:production"}
    assert all(r["error"] is None and r["tokens_out"] > 0 for rows in results.values() for r in rows)
    settings = json.loads(registry.store.db.execute("SELECT settings FROM runs WHERE run='tuned'").fetchone()[0])
    assert settings["arms"]["hybrid:production"]["model"]["adapter"].endswith("models/v1/adapter")
    assert summarize_run(registry, "tuned")["arms"]["hybrid:production"]["n"] == 1
    answer = Answerer(registry).ask(Question("What does Pro cost?", "hybrid:v2"))
    assert answer.trace is not None and answer.trace.arm == "hybrid:v2"
    assert answer.trace.model["adapter"].endswith("models/v2/adapter") and answer.trace.chunks


def test_registry_commands_through_the_cli(registry: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ragtune.cli.main import cli

    def rt(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--project", str(registry.root), *args])
        return result

    listed = json.loads(rt("tune", "list", "--json").output)
    assert [v["version"] for v in listed["versions"]] == ["v1", "v2"]
    refused = rt("tune", "promote", "v1", "--alias", "production")
    assert refused.exit_code != 0 and "has no harness results" in str(refused.exception)
    _scored_run(registry, tmp_path, "r1", {"adapter:v1": "30 euros.", "adapter:v2": "30 euros."})
    assert json.loads(rt("tune", "promote", "v1", "--alias", "production", "--json").output)["version"] == "v1"
    assert json.loads(rt("tune", "promote", "v2", "--alias", "production", "--json").output)["previous"] == "v1"
    shown = json.loads(rt("tune", "show", "production", "--json").output)
    assert shown["version"] == "v2" and shown["aliases"] == ["production"]
    back = json.loads(rt("tune", "rollback", "--alias", "production", "--json").output)
    assert back["version"] == "v1"
    history = json.loads(rt("tune", "history", "--alias", "production", "--json").output)["history"]
    assert [h["action"] for h in history] == ["promote", "promote", "rollback"]
    assert "TAINTED" not in rt("tune", "list").output


def test_tune_train_registers_a_version_and_a_failure_leaves_the_registry_as_it_was(
    registry: Any, tiny_base: Path
) -> None:
    from click.testing import CliRunner

    from ragtune.cli.main import cli
    from ragtune.diagnosis.diagnose import measured_update_costs
    from ragtune.tuning.train import TrainSettings
    from ragtune.tuning.versions import work_folder

    def rt(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--project", str(registry.root), *args])

    bad = rt("tune", "train", "--data", "fmt", "--base", str(registry.root / "no-such-model"), "--max-steps", "1")
    assert bad.exit_code != 0 and "no-such-model" in str(bad.exception)
    assert [v.version for v in list_versions(registry.store)] == ["v1", "v2"]  # unchanged
    missing = rt("tune", "train", "--data", "nope")
    assert missing.exit_code != 0 and "nope" in str(missing.exception)

    done = rt("tune", "train", "--data", "fmt", "--base", str(tiny_base), "--max-steps", "2", "--batch-size", "2", "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    v3 = json.loads(done.output[done.output.index("{") :])
    assert v3["version"] == "v3" and v3["base"] == str(tiny_base) and v3["result"]["steps"] == 2
    assert (registry.root / v3["adapter"] / "adapter_config.json").is_file()
    assert v3["dataset_digest"] == load_dataset(registry, "fmt").digest
    assert measured_update_costs(registry.store) == {"retrain_s": v3["result"]["wall_seconds"]}
    # the work folder is a function of data, base and settings, so a killed run finds its checkpoints again
    s = TrainSettings(max_steps=2)
    assert work_folder(registry, "d", "b", s) == work_folder(registry, "d", "b", TrainSettings(max_steps=2))
    assert work_folder(registry, "d", "b", s) != work_folder(registry, "d", "b", TrainSettings(max_steps=3))


def test_the_server_serves_registered_fine_tunes(registry: Any, serve: Any) -> None:  # noqa: F811
    registry.config.generator.max_new_tokens = 4
    promote(registry, "v1", "production", force=True, reason="serve it")
    live = serve(registry)
    with live.client() as http:
        models = [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert {"ragtune-adapter:production", "ragtune-hybrid:production"} <= set(models)
        reply = http.post("/v1/chat/completions", json={"model": "ragtune-hybrid:production",
                          "messages": [{"role": "user", "content": "What does Pro cost?"}]})  # fmt: skip
        assert reply.status_code == 200, reply.text
        trace = http.get(f"/traces/{reply.json()['trace_id']}").json()
        assert trace["arm"] == "hybrid:production" and trace["model"]["adapter"].endswith("models/v1/adapter")
        asked = http.post("/ask", json={"question": "What does Pro cost?", "arm": "adapter:v2"})
        assert asked.status_code == 200, asked.text
        unknown = http.post("/ask", json={"question": "What does Pro cost?", "arm": "adapter:v9"})
        assert unknown.status_code == 400 and "no model version or alias 'v9'" in unknown.json()["error"]["message"]

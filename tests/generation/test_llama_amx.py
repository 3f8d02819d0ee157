"""The AMX guard: on a CPU with AMX, llama.cpp models load without extra buffer types (its AMX kernels crash)."""

from __future__ import annotations

import pytest

from ragtune.generation import llama_amx

lib = pytest.importorskip("llama_cpp.llama_cpp")


def test_the_guard_turns_extra_buffer_types_off_only_while_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGTUNE_LLAMA_EXTRA_BUFTS", "0")
    original = lib.llama_model_default_params
    with llama_amx.guarded():
        assert lib.llama_model_default_params().use_extra_bufts is False
    assert lib.llama_model_default_params is original
    monkeypatch.setenv("RAGTUNE_LLAMA_EXTRA_BUFTS", "1")
    with llama_amx.guarded():
        assert lib.llama_model_default_params is original


def test_the_default_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGTUNE_LLAMA_EXTRA_BUFTS", raising=False)
    assert llama_amx.extra_buffer_types_allowed() is (not llama_amx.cpu_has_amx())

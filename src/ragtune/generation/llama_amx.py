"""A guard for llama.cpp on CPUs with AMX: its AMX matrix kernels crash (SIGSEGV in the first prompt of more than
one token) on some Sapphire-Rapids-class machines, ours included (ggml-org/llama.cpp#20824, closed unfixed).

llama.cpp uses AMX through its "extra buffer types" (weights repacked at load). Turning those off for the model
(``use_extra_bufts = false``, what ``llama-cli --no-repack`` does) keeps every other kernel and stops the crash.
On CPUs without AMX nothing changes. ``RAGTUNE_LLAMA_EXTRA_BUFTS=1`` forces them on, ``=0`` off.

``python -m ragtune.generation.llama_amx ARGS`` runs ``llama_cpp.server`` with the guard (the tests' peer).
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any


@cache
def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("flags") and " amx_int8" in line for line in info)
    except OSError:
        return False


def extra_buffer_types_allowed() -> bool:
    forced = os.environ.get("RAGTUNE_LLAMA_EXTRA_BUFTS")
    if forced in ("0", "1"):
        return forced == "1"
    return not cpu_has_amx()


def _patched(original: Any) -> Any:
    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    params.ragtune_guard = True  # type: ignore[attr-defined]
    return params


@contextmanager
def guarded() -> Iterator[None]:
    """While a ``llama_cpp.Llama`` is built inside this block, its model loads without extra buffer types if the
    CPU has AMX (see the module's docstring)."""
    import llama_cpp.llama_cpp as lib

    if extra_buffer_types_allowed() or getattr(lib.llama_model_default_params, "ragtune_guard", False):
        yield
        return
    original = lib.llama_model_default_params
    lib.llama_model_default_params = _patched(original)
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def main(argv: list[str]) -> None:
    """``llama_cpp.server`` with the guard in place for the whole process."""
    import llama_cpp.llama_cpp as lib

    if not extra_buffer_types_allowed():
        lib.llama_model_default_params = _patched(lib.llama_model_default_params)
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])

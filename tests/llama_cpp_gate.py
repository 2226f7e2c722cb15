"""The one gate for tests of the llama.cpp runtime, which need llama-cpp-python.

`make install` builds llama-cpp-python from source and lets the build fail (the app then runs GGUF files on
transformers). Outside CI a test of the llama.cpp runtime then skips and says why; in CI (CI=true, as .ci/run
sets it) a missing llama-cpp-python fails those tests instead, so a broken build can never pass unnoticed.
"""

from __future__ import annotations

import os

import pytest

from desktop_ai.engine.runtimes import llama_cpp

IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
MISSING = ("llama-cpp-python is not installed: its source build failed at `make install` (it needs a C++ compiler "
           "and cmake; retry with `make install-llama-cpp`)")


def require_llama_cpp() -> None:
    """Returns where llama-cpp-python imports; skips outside CI and fails in CI where it does not."""
    if llama_cpp.available():
        return
    if IN_CI:
        pytest.fail(f"CI=true, and {MISSING}. CI must test the llama.cpp runtime.", pytrace=False)
    pytest.skip(MISSING)


# A test that needs it: @needs_llama_cpp (the fixture `llama_cpp_installed` in conftest.py calls require_llama_cpp).
needs_llama_cpp = pytest.mark.usefixtures("llama_cpp_installed")

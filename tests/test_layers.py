"""The layers of design.md, checked on the source: each package imports only the ones below it.

engine (no Qt) < gui < cli, bench and app. The GUI may use the engine's result types and constants;
the engine never reaches up into gui, cli, bench or app, and no module grows past about 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "desktop_ai"
# What each layer may not import (a prefix match on the imported module's dotted name).
FORBIDDEN = {
    "engine": ("PySide6", "desktop_ai.gui", "desktop_ai.cli", "desktop_ai.bench", "desktop_ai.app"),
    "gui": ("desktop_ai.cli", "desktop_ai.bench"),
    "bench": ("PySide6", "desktop_ai.gui", "desktop_ai.cli", "desktop_ai.app"),
    "anywhere": ("PySide6", "desktop_ai.gui", "desktop_ai.cli", "desktop_ai.bench", "desktop_ai.app"),
    "server": ("PySide6", "desktop_ai.gui", "desktop_ai.cli", "desktop_ai.bench", "desktop_ai.app"),
}
MAX_LINES = 620
ENGINE_GROUPS = {"audio", "cluster", "conversations", "documents", "models", "runtimes", "tasks"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _imports_at_top(path: Path) -> list[tuple[int, str]]:
    """Imports that run when the module is imported (not inside a function)."""
    found: list[tuple[int, str]] = []
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    modules = _modules(layer)
    assert modules, f"desktop_ai/{layer}/ has no modules"
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in modules
        for line, name in _imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_a_wrong_import(tmp_path: Path) -> None:
    """The check itself can fail: a Qt import in an engine-like file is found."""
    sample = tmp_path / "bad.py"
    sample.write_text("def f():\n    from PySide6.QtCore import QObject\n    import desktop_ai.gui.worker\n")
    names = [name for _, name in _imports(sample)]
    assert names == ["PySide6.QtCore", "desktop_ai.gui.worker"]


def test_no_module_is_past_about_six_hundred_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_the_engine_is_grouped_by_kind() -> None:
    """tasks/, audio/, models/, runtimes/, conversations/ and cluster/ hold the engine's modules; only what every part
    uses stays at the top."""
    engine = PACKAGE / "engine"
    top = sorted(p.stem for p in engine.glob("*.py"))
    assert top == ["__init__", "cache", "errors", "process", "workspace"]
    groups = {p.name for p in engine.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert groups == ENGINE_GROUPS
    assert {"text_generation", "text_classification", "translation", "image_classification", "transcription",
            "dictation"} <= {p.stem for p in (engine / "tasks").glob("*.py")}
    assert {"microphone", "voice_activity", "audio_files", "transcript"} <= {p.stem for p in (engine / "audio").glob("*.py")}
    assert {"catalogue", "store", "loading", "compression", "devices"} <= {p.stem for p in (engine / "models").glob("*.py")}
    assert {"connection", "tasks", "worker", "jobs", "runs"} <= {p.stem for p in (engine / "cluster").glob("*.py")}
    groups = {p.name for p in engine.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert groups == ENGINE_GROUPS  # no folder without an __init__ either


def test_ray_is_imported_only_by_the_cluster_group_and_only_when_a_job_runs() -> None:
    """The app runs without ray: no module outside engine/cluster imports it, and none imports it at the top."""
    cluster = PACKAGE / "engine" / "cluster"
    outside = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in PACKAGE.rglob("*.py")
               if not path.is_relative_to(cluster) for line, name in _imports(path) if name.split(".")[0] == "ray"]
    assert not outside, outside
    at_top = [f"{path.name}:{line}" for path in cluster.glob("*.py")
              for line, name in _imports_at_top(path) if name.split(".")[0] == "ray"]
    assert not at_top, at_top


def test_the_model_library_and_the_store_do_not_import_each_other() -> None:
    """library.py and store.py both ask model_files.py what a file is; neither reaches into the other."""
    models = PACKAGE / "engine" / "models"
    library = [name for _, name in _imports(models / "library.py")]
    store = [name for _, name in _imports(models / "store.py")]
    assert "desktop_ai.engine.models.store" not in library
    assert "desktop_ai.engine.models.library" not in store

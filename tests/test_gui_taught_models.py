"""The Models window lists taught classifiers (labels, examples, accuracy, size) and exports, imports and
deletes them; the files are made here with small hand-made embeddings (no model needed to list them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_ai.engine.models.inventory import Inventory
from desktop_ai.engine.models.library import ModelLibrary
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.taught_classifiers import Example, TaughtClassifier, TaughtLibrary
from desktop_ai.gui.models_window import ModelsWindow


def _classifier(name: str) -> TaughtClassifier:
    rng = np.random.default_rng(0)
    centres = {"cats": rng.normal(size=8), "dogs": rng.normal(size=8)}
    examples = [Example(f"{label} {i}", label) for label in centres for i in range(4)]
    vectors = np.stack([centres[e.label] + 0.1 * rng.normal(size=8) for e in examples]).astype(np.float32)
    classifier = TaughtClassifier(name, "recognize", "efficientnet-lite0", ["cats", "dogs"], examples, vectors)
    classifier.fit()
    return classifier


def test_taught_classifiers_are_listed_exported_imported_and_deleted(qtbot, tmp_path: Path) -> None:
    library = TaughtLibrary()  # the user's (an isolated home in tests)
    library.save(_classifier("pets"))
    window = ModelsWindow(ModelStore(tmp_path / "converted"), inventory=Inventory(ModelStore(tmp_path / "c2"), ModelLibrary(), vram_bytes=None),
                          online=False)
    qtbot.addWidget(window)
    box = window.taught_box
    qtbot.waitUntil(lambda: box.names() == ["pets"], timeout=10_000)
    row = box.tree.topLevelItem(0)
    assert [row.text(i) for i in range(5)] == ["pets", "photos", "cats, dogs", "cats 4, dogs 4", "100 %"]
    assert row.text(5).endswith("KiB")
    exported = tmp_path / "pets-copy.taught.npz"
    box.export("pets", exported)
    qtbot.waitUntil(lambda: exported.is_file() and "Exported" in box.status.text(), timeout=10_000)
    box.delete("pets")
    qtbot.waitUntil(lambda: box.names() == [], timeout=10_000)
    box.import_file(exported)
    qtbot.waitUntil(lambda: box.names() == ["pets"], timeout=10_000)
    bad = tmp_path / "bad.taught.npz"
    bad.write_bytes(b"nonsense")
    box.import_file(bad)
    qtbot.waitUntil(lambda: "not a taught classifier" in box.status.text(), timeout=10_000)
    assert box.names() == ["pets"]


def test_the_classifier_chosen_by_cross_validation_is_listed_with_each_ones_accuracy(qtbot, tmp_path: Path) -> None:
    classifier = _classifier("reviews")
    classifier.task = "classify"
    rng = np.random.default_rng(1)
    y = np.array([0 if e.label == "cats" else 1 for e in classifier.examples])
    classifier.vectors = rng.normal(size=classifier.vectors.shape).astype(np.float32)  # the embeddings say nothing
    lm = rng.normal(size=(len(y), 2)).astype(np.float32)
    lm[np.arange(len(y)), y] += 8.0  # the language model's scores do
    classifier.lm_scores = lm
    classifier.fit()
    assert classifier.kind == "language-model"
    TaughtLibrary().save(classifier)
    window = ModelsWindow(ModelStore(tmp_path / "converted"), inventory=Inventory(ModelStore(tmp_path / "c2"), ModelLibrary(), vram_bytes=None),
                          online=False)
    qtbot.addWidget(window)
    box = window.taught_box
    qtbot.waitUntil(lambda: box.names() == ["reviews"], timeout=10_000)
    shown = box.tree.topLevelItem(0).text(6)
    assert shown.startswith("language model (chosen by cross-validation: embedding head ") and "language model 100 %" in shown

"""Fixtures the documents tests share (imported by each test module): the written files and the real MiniLM,
loaded once per session whichever module asks first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import document_files

_STORES: list = []


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return document_files.write_all(tmp_path_factory.mktemp("written-documents"))


@pytest.fixture(scope="session")
def embedding_store(tmp_path_factory: pytest.TempPathFactory):
    from desktop_ai.engine.models.store import ModelStore

    if not _STORES:
        _STORES.append(ModelStore(converted_dir=tmp_path_factory.mktemp("converted")))
    return _STORES[0]


@pytest.fixture(scope="session")
def embedder(embedding_store):
    """The real embedded all-MiniLM-L6-v2."""
    from desktop_ai.engine.documents.embedding import DocumentEmbedder

    return DocumentEmbedder(embedding_store, device="cpu")


@pytest.fixture
def folder(tmp_path: Path, written: dict[str, Path]) -> Path:
    """A fresh copy of the written documents, for tests that edit or delete them."""
    target = tmp_path / "documents"
    shutil.copytree(next(iter(written.values())).parent, target)
    return target


@pytest.fixture
def index(tmp_path: Path):
    from desktop_ai.engine.documents.index import DocumentIndex

    with DocumentIndex(tmp_path / "documents.sqlite") as opened:
        yield opened

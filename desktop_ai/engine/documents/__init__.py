"""Chat with your own documents: readers (one module per format), chunking in the embedding model's tokens,
the SQLite index (FTS5 for words, float32 vectors for meaning), incremental indexing, and hybrid search."""

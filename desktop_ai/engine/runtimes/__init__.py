"""One small interface per kind of model, one implementation per engine (design notes: runtimes/)."""

"""Everything about a model before a task runs it: the catalogue, the store (embedded packages, the Hub
cache, local files), loading with CPU fallback, compression, and devices."""

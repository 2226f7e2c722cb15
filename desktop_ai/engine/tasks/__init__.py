"""One module per job (generate, classify, translate, recognize, transcribe, dictate), each with the same
small surface: load, run(input, options, progress/partial callbacks, cancel) and a typed result."""

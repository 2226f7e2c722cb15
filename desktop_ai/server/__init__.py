"""The local HTTP API: OpenAI's routes (models, chat and completions, embeddings, audio transcriptions) and the
app's own (classify with your labels, translate, recognize an image), over the same engine as the window and the
CLI. Laid out as vLLM's entrypoints/openai: protocol.py holds the request and response models, one module per
family of routes, limits.py the key and the limits, app.py the factory, serving.py the uvicorn side.

It never imports Qt: the window starts it as a process of its own (`desktop-ai serve`)."""

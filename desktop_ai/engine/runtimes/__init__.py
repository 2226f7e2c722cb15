"""Runtimes: one small interface per kind of model, one implementation per engine (llama.cpp, CTranslate2,
ONNX Runtime, transformers/torch). Tasks pick one by the model's format; the user can force one."""

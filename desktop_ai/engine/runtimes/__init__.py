"""Runtimes: one small interface per kind of model, one implementation per engine (llama.cpp, CTranslate2,
transformers). Tasks pick one by the model's format; the user can force one."""

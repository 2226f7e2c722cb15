"""Tiny random-weight models built offline in well under a second, for unit and GUI tests.

Each builder writes a real model folder (save_pretrained: config.json, model.safetensors, tokenizer.json)
so the tests exercise the app's real loading code. Importable from any test module:

    from tests.tiny_models import build_causal_lm   # or: from tiny_models import ...

The tiny MarianMT comes from desktop_ai.bench.marian_stand_in (TINY), where the bench builds its stand-ins too.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "[CLS]", "[SEP]"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAINING_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "I love this film, it was wonderful and moving.",
    "This is the worst meal I have ever eaten.",
    "The weather today is sunny with a light breeze.",
    "Please translate this sentence into German.",
    "Local models run on your own computer without the internet.",
    "The cat sat on the mat and looked out of the window.",
    "Stocks fell sharply after the central bank raised rates.",
    "The team won the match in the final minute.",
    "Scientists found water on a distant planet.",
    "Parliament voted on the new budget last night.",
    "My phone battery dies before lunch every day.",
    "What a great day to go for a walk in the park!",
    "I am not happy with the service at all.",
    "The concert was loud, bright and full of joy.",
    "Read the instructions before you start the machine.",
    "Once upon a time there was a small village by the sea.",
    "She wrote a long letter to her old friend.",
    "The train was late again, so we missed the meeting.",
    "Add two cups of flour and a pinch of salt.",
    "He plays the guitar and sings in a band.",
    "The museum opens at nine and closes at five.",
    "This product is amazing, I would buy it again.",
    "Terrible, boring and far too long.",
    "Hello, how are you today?",
    "Tell me a short story about a robot.",
    "The answer is forty two.",
    "Sport, politics, science and music are topics.",
    "A good book and a cup of tea make a fine evening.",
    "Write a poem about the autumn leaves.",
    "Positive and negative reviews are both useful.",
    "Thank you very much for your help.",
    "It is raining, so take an umbrella with you.",
    "The children laughed and played in the garden.",
    "Computers follow instructions one step at a time.",
    "We will meet again next week at the same place.",
    "The user asks and the assistant answers; the system sets the rules.",
]


def build_tokenizer(path: str | Path, *, cls_sep: bool = False, model_max_length: int | None = None) -> Path:
    """A WordLevel tokenizer trained on TRAINING_LINES, saved as a transformers fast tokenizer.

    cls_sep: wrap single texts as "[CLS] text [SEP]" (BERT style); off for causal LMs.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(TRAINING_LINES, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    if cls_sep:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
        )
    kwargs = {}
    if model_max_length is not None:
        kwargs["model_max_length"] = model_max_length
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        **kwargs,
    )
    fast.save_pretrained(path)
    return path


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def build_causal_lm(path: str | Path, max_positions: int = 256) -> Path:
    """A 2-layer Llama (hidden 32) with tied embeddings, a chat template and eos = <|im_end|>; max_positions bounds
    how long an answer can run (a stop test needs one longer than the time a key press takes to arrive)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    build_tokenizer(path)
    tokenizer = _load_tokenizer(path)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    return path


def _tiny_bert_config(vocab_size: int, pad_token_id: int, **kwargs):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=pad_token_id,
        **kwargs,
    )


def build_sequence_classifier(path: str | Path) -> Path:
    """A 2-layer BERT sentiment classifier (random weights): labels NEGATIVE / POSITIVE."""
    import torch
    from transformers import BertForSequenceClassification

    path = Path(path)
    build_tokenizer(path, cls_sep=True, model_max_length=512)
    tokenizer = _load_tokenizer(path)
    config = _tiny_bert_config(
        len(tokenizer),
        tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    config.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    return path


def build_embedding_model(path: str | Path) -> Path:
    """A 2-layer BERT encoder (random weights) for the zero-shot sentence-embedding path."""
    import torch
    from transformers import BertModel

    path = Path(path)
    build_tokenizer(path, cls_sep=True, model_max_length=512)
    tokenizer = _load_tokenizer(path)
    config = _tiny_bert_config(len(tokenizer), tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = BertModel(config)
    model.save_pretrained(path)
    return path


WAV2VEC2_LETTERS = "abcdefghijklmnopqrstuvwxyz'"


def build_wav2vec2(path: str | Path) -> Path:
    """A 2-layer wav2vec2 CTC model (hidden 32, random weights) with a letter vocabulary and a 16 kHz feature extractor.

    The conv feature encoder keeps wav2vec2's strides (5, 2, 2, 2, 2, 2, 2: one frame per 20 ms at 16 kHz) with
    narrow channels, so AutoModelForCTC, AutoTokenizer and AutoFeatureExtractor load it offline like the real one.
    """
    import json

    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2}
    for letter in WAV2VEC2_LETTERS:
        vocab[letter] = len(vocab)
    vocab_file = path / "vocab.json"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    features = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(8, 8, 8, 8, 8, 8, 8),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=False,
        feat_extract_norm="group",
        pad_token_id=vocab["<pad>"],
        ctc_loss_reduction="mean",
    )
    config.architectures = ["Wav2Vec2ForCTC"]
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(config)
    model.eval()
    model.save_pretrained(path)
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(path)
    return path

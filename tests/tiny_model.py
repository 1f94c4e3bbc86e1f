"""A tiny random Llama checkpoint with a locally trained tokenizer, made offline.

The vLLM tests need a real checkpoint directory that vLLM's engine loads like any
other: ``config.json``, safetensors weights, ``tokenizer.json`` with a chat template.
The tokenizer is a byte-level BPE trained on this repository's own Python sources and
demo prompts (backticks removed, so random text never forms a fenced code block); the
model is a 2-layer Llama with random weights (2 heads of dimension 32, the smallest
head size vLLM's CPU attention supports). Nothing is downloaded.

    python -m tests.tiny_model DIR      # build one by hand
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VOCAB_SIZE = 1024
MAX_POSITIONS = 2048
BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SOURCE_DIRS = ("services", "shared", "sandbox", "tests")
DEMO_PROMPTS = ROOT / "data" / "demo" / "humaneval.jsonl.gz"


def training_text(root: Path = ROOT) -> Iterator[str]:
    """The repository's Python sources and demo prompts, in a fixed order, backticks removed."""
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            if "rootfs" not in path.parts:
                yield path.read_text(encoding="utf-8", errors="replace").replace("`", "")
    if DEMO_PROMPTS.exists():
        with gzip.open(DEMO_PROMPTS, "rt", encoding="utf-8") as lines:
            for line in lines:
                yield str(json.loads(line)["prompt"]).replace("`", "")


def build_tokenizer(directory: Path, texts: Iterator[str], vocab_size: int = VOCAB_SIZE) -> int:
    """Train a byte-level BPE on ``texts``, save it with a chat template; return its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(directory))
    return len(tokenizer)


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write a tiny random Llama and its tokenizer to ``directory`` (created); return it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(directory, training_text())
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=0, eos_token_id=1, pad_token_id=2
    )
    model.save_pretrained(str(directory))
    return directory


if __name__ == "__main__":
    print(build_tiny_model(Path(sys.argv[1])))

"""Shared fixtures: a tiny random Llama (GQA, tied embeddings) with a byte-level BPE tokenizer, built
offline in seconds, and its ONNX export. Nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["report_fixtures"]  # tiny_run: a finished check on the tiny model (tests of report.json and its outputs)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BBQ_DIR = SHARED / "bbq" / "data"
PPL_FILE = SHARED / "wikitext-2" / "test.txt"
# `prunegate check` measures perplexity by default and needs a corpus: the shared WikiText-2 test split. The CLI's
# --ppl-file reads this variable (subprocess tests inherit it); tests calling the core pass ppl_file=PPL_FILE.
os.environ.setdefault("PRUNEGATE_PPL_FILE", str(PPL_FILE))

_CORPUS = [
    "The old man and the young woman were talking. Who was forgetful? Answer: Unknown",
    "Cannot be determined. Not enough information. The grandfather, the grandson.",
    "Question: Who was not comfortable using the phone? Can't answer. Not known.",
] * 20


def build_tiny_model(out: Path, *, tie: bool = True, seed: int = 0) -> Path:
    """Save a tiny random ``LlamaForCausalLM`` (2 layers, hidden 32, 4 heads / 2 KV heads, vocab 300) and
    a byte-level BPE tokenizer trained on a few sentences to ``out``; return ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=hf_tok.vocab_size if hf_tok.vocab_size >= 300 else 300, hidden_size=32,
                         intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama checkpoint directory (read-only for tests: copy before modifying)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model exported by prunegate's exporter (optimum, text-generation-with-past)."""
    from exporters.onnx_export import export_onnx

    work = tmp_path_factory.mktemp("work")
    onnx_dir, _ = export_onnx(tiny_model_dir, work, "tiny", log=lambda s: None)
    return onnx_dir


@pytest.fixture(scope="session")
def bbq_dir() -> Path:
    """The official BBQ files in ../shared (skips when absent)."""
    if not BBQ_DIR.is_dir():
        pytest.skip(f"BBQ data not found at {BBQ_DIR}")
    return BBQ_DIR


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``prunegate ARGS`` in-process (``gate.cli.main.main``); return (exit code, stdout, stderr)."""
    from gate.cli.main import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err

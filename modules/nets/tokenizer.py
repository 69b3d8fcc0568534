"""The CLIP BPE tokenizer (Radford et al. 2021), built offline from the bundled vocabulary.

``data/bpe_simple_vocab_16e6.txt.gz`` is OpenAI CLIP's merge list (MIT licence,
shipped by open_clip). The vocabulary is CLIP's: 256 byte symbols, the same
with the end-of-word marker ``</w>``, one entry per merge (48,894), then
``<|startoftext|>`` and ``<|endoftext|>`` = 49,408 ids, exactly the ids SD
checkpoints were trained with.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a tokenizer is built, so a server start does not pay for transformers
    from transformers import CLIPTokenizer

BPE_FILE = Path(__file__).resolve().parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
MERGE_COUNT = 49152 - 256 - 2  # CLIP uses the first 48,894 merges of the file
START_OF_TEXT, END_OF_TEXT = "<|startoftext|>", "<|endoftext|>"
CONTEXT_LENGTH = 77


def byte_symbols() -> list[str]:
    """GPT-2's reversible byte -> printable-unicode table (Radford et al. 2019), in byte order of the vocab."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + shifted)
            shifted += 1
    # The vocab lists the printable bytes first, then the shifted ones, as the table was built.
    return [symbols[b] for b in printable] + [symbols[b] for b in range(256) if b not in printable]


def read_merges(path: Path = BPE_FILE) -> list[tuple[str, str]]:
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]


def build_clip_tokenizer(pad_token_id: int = 49407) -> CLIPTokenizer:
    """CLIP's tokenizer; SD1 pads with <|endoftext|> (49407), OpenCLIP/SD2 with id 0 ("!")."""
    merges = read_merges()
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [START_OF_TEXT, END_OF_TEXT]
    vocab = {token: index for index, token in enumerate(tokens)}
    pad_token = tokens[pad_token_id]
    from transformers import CLIPTokenizer

    return CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH,
        bos_token=START_OF_TEXT, eos_token=END_OF_TEXT, unk_token=END_OF_TEXT, pad_token=pad_token,
    )

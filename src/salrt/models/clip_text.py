"""CLIP text encoder (Radford et al., ICML 2021) and its byte-level BPE tokenizer.

:class:`CLIPTextEncoder` mirrors OpenAI's text tower (ViT-B/32 defaults: width 512, 12 layers,
8 heads, 77-token context, causal mask); parameter names match the text keys of OpenAI's
checkpoints (``token_embedding.weight``, ``positional_embedding``, ``transformer.resblocks.{i}.
attn.in_proj_weight`` ..., ``ln_final.*``, ``text_projection``), so :func:`load_clip_text_pretrained`
reads ``ViT-B-32.pt`` (TorchScript archive or state dict) and ignores the image tower.

:class:`CLIPTokenizer` needs the BPE merges file the user supplies (OpenAI's
``bpe_simple_vocab_16e6.txt.gz`` or Hugging Face's ``merges.txt``): nothing is downloaded.
It equals OpenAI's tokenizer (``clip/simple_tokenizer.py`` with ``clip.tokenize(truncate=True)``):
ftfy's text repair, HTML unescaping, whitespace folding, lower-casing, the ``regex`` pattern with
Unicode classes ``\\p{L}``/``\\p{N}``, byte-level BPE; checked on 200+ committed captions against
ids recorded from the reference (tests/models/test_tokenizer.py). Needs ``salrt[text]``.
"""

from __future__ import annotations

import gzip
import html
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from salrt.errors import CheckpointError, SalrtError, require
from salrt.models.blocks import MultiheadAttention


@dataclass(frozen=True)
class CLIPTextConfig:
    vocab_size: int = 49408
    context: int = 77
    width: int = 512
    layers: int = 12
    heads: int = 8
    embed_dim: int = 512  # text_projection output


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block with OpenAI's parameter names."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, mask)
        return x + self.mlp(self.ln_2(x))


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), CLIP's activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))


class CLIPTextEncoder(nn.Module):
    """Token ids (B, L) int64 -> per-token features (B, L, embed_dim) (projected, after ln_final).

    TAVDiff needs every token's feature, not CLIP's pooled end-of-text embedding, so the text
    projection is applied to all positions.
    """

    def __init__(self, cfg: CLIPTextConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CLIPTextConfig()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context, cfg.width))
        self.transformer = _Transformer(cfg.width, cfg.layers, cfg.heads)
        self.ln_final = nn.LayerNorm(cfg.width)
        self.text_projection = nn.Parameter(torch.zeros(cfg.width, cfg.embed_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n].to(self.token_embedding.weight.dtype)
        mask = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        for block in self.transformer.resblocks:
            x = block(x, mask)
        return self.ln_final(x) @ self.text_projection


def load_clip_text_pretrained(model: CLIPTextEncoder, path: str | os.PathLike[str]) -> list[str]:
    """Load the text tower of an OpenAI CLIP checkpoint; returns the ignored (image) keys."""
    from salrt import checkpoint as ckpt

    p = Path(path)
    try:
        sd = ckpt.extract_state_dict(ckpt.read_torch_file(p), str(p))
    except CheckpointError:
        try:  # OpenAI ships TorchScript archives
            sd = torch.jit.load(str(p), map_location="cpu").state_dict()
        except Exception:
            raise CheckpointError(f"{p}: neither a state dict nor a TorchScript CLIP archive") from None
    own = set(model.state_dict())
    keep = {k: v for k, v in sd.items() if k in own}
    ckpt.check_and_load(model, keep, str(p))
    return sorted(set(sd) - own)


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# CLIP's pre-tokenisation pattern (needs the ``regex`` module for the Unicode classes)
_PATTERN = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


class CLIPTokenizer:
    """CLIP's lower-cased byte-level BPE; ``__call__`` returns (B, context) int64 ids padded with 0
    (a numpy array: the onnxruntime path tokenises without torch)."""

    def __init__(self, merges_path: str | os.PathLike[str], context: int = 77) -> None:
        p = Path(merges_path)
        if not p.is_file():
            raise SalrtError(f"{p}: no such BPE merges file (CLIP's bpe_simple_vocab_16e6.txt.gz or merges.txt)")
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1] if len(m.split()) == 2]
        if len(merges) < 100:
            raise SalrtError(f"{p}: not a BPE merges file ({len(merges)} merge rules)")
        self.byte_encoder = _bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.context = context
        self.sot, self.eot = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]
        regex = require("regex", "the CLIP tokenizer")
        self._ftfy = require("ftfy", "the CLIP tokenizer")
        self._pat = regex.compile(_PATTERN, regex.IGNORECASE)
        self._space = regex.compile(r"\s+")  # the reference folds whitespace with regex's \s, not re's
        self._bpe_cached = lru_cache(maxsize=4096)(self._bpe_uncached)  # per tokenizer, freed with it

    def _bpe(self, token: str) -> tuple[str, ...]:
        return self._bpe_cached(token)

    def _bpe_uncached(self, token: str) -> tuple[str, ...]:
        if token in _SPECIAL:  # the reference maps these literal strings to their own ids
            return (token,)
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda q: self.ranks.get(q, 1 << 30))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without start/end tokens (the reference's ``encode``)."""
        text = html.unescape(html.unescape(self._ftfy.fix_text(text))).strip()
        text = self._space.sub(" ", text).strip().lower()
        ids = []
        for tok in self._pat.findall(text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(tok))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.context), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [self.sot, *self.encode(t)][: self.context - 1] + [self.eot]
            out[i, : len(ids)] = ids
        return out

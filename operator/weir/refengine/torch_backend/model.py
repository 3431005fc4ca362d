"""A small decoder-only transformer, written as functions over a weights record.

Pre-norm blocks (RMSNorm, multi-head attention, GELU MLP), learned positions,
tied embeddings. The key/value cache is one preallocated tensor per layer with
a row per batch slot, so a decode step for any set of running requests is one
batched pass: gather their rows, attend up to each request's own length (a
mask hides the rest), write the new keys and values back at their positions.
Plain functions rather than `nn.Module` subclasses keep the code typed whether
or not torch is installed for the type checker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from weir.refengine.tokenizer import VOCAB_SIZE


@dataclass(frozen=True)
class ModelShape:
    """Sizes of the model and its cache."""

    layers: int
    width: int
    heads: int
    max_seq_len: int
    slots: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass
class Layer:
    norm1: torch.Tensor
    qkv: torch.Tensor
    out: torch.Tensor
    norm2: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor


@dataclass
class Weights:
    embed: torch.Tensor
    positions: torch.Tensor
    layers: list[Layer]
    norm: torch.Tensor


@dataclass
class KVCache:
    """keys[l] and values[l]: (slots, heads, max_seq_len, head_dim)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def init_weights(shape: ModelShape, device: torch.device, seed: int) -> Weights:
    """Random weights with GPT-2's initial scale (std 0.02)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    d = shape.width

    def rand(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=gen) * 0.02).to(device)

    def ones() -> torch.Tensor:
        return torch.ones(d, device=device)

    layers = [
        Layer(ones(), rand(d, 3 * d), rand(d, d), ones(), rand(d, 4 * d), rand(4 * d, d))
        for _ in range(shape.layers)
    ]
    return Weights(rand(VOCAB_SIZE, d), rand(shape.max_seq_len, d), layers, ones())


def empty_cache(shape: ModelShape, device: torch.device) -> KVCache:
    size = (shape.slots, shape.heads, shape.max_seq_len, shape.head_dim)
    return KVCache(
        keys=[torch.zeros(size, device=device) for _ in range(shape.layers)],
        values=[torch.zeros(size, device=device) for _ in range(shape.layers)],
    )


def _rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


def _mlp(x: torch.Tensor, layer: Layer) -> torch.Tensor:
    return F.gelu(_rms_norm(x, layer.norm2) @ layer.up) @ layer.down


def _split_heads(x: torch.Tensor, shape: ModelShape) -> torch.Tensor:
    b, t, _ = x.shape
    return x.view(b, t, shape.heads, shape.head_dim).transpose(1, 2)


def prefill(
    w: Weights, cache: KVCache, shape: ModelShape, slot: int, ids: torch.Tensor, start: int = 0
) -> torch.Tensor:
    """Run prompt positions [start, start + len(ids)) into `slot`; logits of the last one.

    A prompt may come in chunks (chunked prefill): each chunk attends to the
    cached keys of the chunks before it and causally within itself.
    """
    n = ids.shape[0]
    end = start + n
    x = (w.embed[ids] + w.positions[start:end]).unsqueeze(0)
    rows = torch.arange(start, end, device=ids.device).unsqueeze(1)
    mask = (torch.arange(end, device=ids.device).unsqueeze(0) <= rows).view(1, 1, n, end)
    for i, layer in enumerate(w.layers):
        q, k, v = (_rms_norm(x, layer.norm1) @ layer.qkv).chunk(3, dim=-1)
        q, k, v = (_split_heads(t, shape) for t in (q, k, v))
        cache.keys[i][slot, :, start:end] = k[0]
        cache.values[i][slot, :, start:end] = v[0]
        keys = cache.keys[i][slot, :, :end].unsqueeze(0)
        values = cache.values[i][slot, :, :end].unsqueeze(0)
        att = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + att.transpose(1, 2).reshape(1, n, shape.width) @ layer.out
        x = x + _mlp(x, layer)
    return _rms_norm(x[0, -1], w.norm) @ w.embed.T


def decode(
    w: Weights,
    cache: KVCache,
    shape: ModelShape,
    slots: torch.Tensor,
    ids: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """One token for each running request: (B,) ids at (B,) positions -> (B, vocab) logits."""
    b = ids.shape[0]
    span = int(positions.max().item()) + 1
    x = (w.embed[ids] + w.positions[positions]).unsqueeze(1)
    visible = torch.arange(span, device=ids.device).unsqueeze(0) <= positions.unsqueeze(1)
    mask = visible.view(b, 1, 1, span)
    for i, layer in enumerate(w.layers):
        q, k, v = (_rms_norm(x, layer.norm1) @ layer.qkv).chunk(3, dim=-1)
        q, k, v = (_split_heads(t, shape) for t in (q, k, v))
        cache.keys[i][slots, :, positions] = k[:, :, 0]
        cache.values[i][slots, :, positions] = v[:, :, 0]
        keys = cache.keys[i][slots, :, :span]
        values = cache.values[i][slots, :, :span]
        att = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + att.transpose(1, 2).reshape(b, 1, shape.width) @ layer.out
        x = x + _mlp(x, layer)
    return _rms_norm(x[:, 0], w.norm) @ w.embed.T


def parameter_count(w: Weights) -> int:
    tensors = [w.embed, w.positions, w.norm]
    for layer in w.layers:
        tensors += [layer.norm1, layer.qkv, layer.out, layer.norm2, layer.up, layer.down]
    return sum(math.prod(t.shape) for t in tensors)

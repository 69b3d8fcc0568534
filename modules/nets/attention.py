"""Multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``.

SDPA picks the fastest kernel the device has (flash / memory-efficient on
CUDA, a fused C++ kernel on CPU) and never materialises the full attention
matrix where a kernel can avoid it (Vaswani et al. 2017; Dao et al. 2022).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def multi_head_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Attention of ``q`` [B, Nq, H*D] over ``k``/``v`` [B, Nk, H*D]; returns [B, Nq, H*D]."""
    batch, length, inner = q.shape
    head_dim = inner // heads

    def split(t: Tensor) -> Tensor:
        return t.view(batch, -1, heads, head_dim).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(batch, length, inner)


class CrossAttention(nn.Module):
    """LDM's ``CrossAttention``: self-attention when ``context_dim`` is None.

    Attribute names (to_q, to_k, to_v, to_out.0) are the checkpoint's key names.
    """

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        out = multi_head_attention(self.to_q(x), self.to_k(context), self.to_v(context), self.heads)
        return self.to_out(out)

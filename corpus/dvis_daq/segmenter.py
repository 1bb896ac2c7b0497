"""A Mask2Former-like per-frame segmenter: learned queries, a small transformer
decoder with masked-free cross-attention to pixel features, a class head and a
mask head (dot product of mask embeddings with the mask features)."""
import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim, num_layers):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """Cross-attention to pixels, self-attention between queries, feed-forward."""

    def __init__(self, dim, nheads, dim_feedforward):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, nheads, dropout=0.0, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout=0.0, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, dim_feedforward), nn.ReLU(), nn.Linear(dim_feedforward, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, tgt, query_pos, memory, memory_pos):
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.cross_attn(q, memory + memory_pos, memory, need_weights=False)[0])
        q = tgt + query_pos
        tgt = self.norm2(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])
        return self.norm3(tgt + self.ffn(tgt))


class FrameSegmenter(nn.Module):
    def __init__(self, *, hidden_dim, num_classes, num_queries, nheads, dim_feedforward, dec_layers):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.pos_proj = nn.Linear(2, hidden_dim)
        self.layers = nn.ModuleList(
            DecoderLayer(hidden_dim, nheads, dim_feedforward) for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, hidden_dim, 3)

    def position_embedding(self, memory):
        """Learned projection of normalised (y, x) pixel coordinates."""
        n, _, h, w = memory.shape
        ys = torch.linspace(0.0, 1.0, h, device=memory.device, dtype=memory.dtype)
        xs = torch.linspace(0.0, 1.0, w, device=memory.device, dtype=memory.dtype)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(1, h * w, 2)
        return self.pos_proj(grid).expand(n, -1, -1)

    def predict(self, queries, mask_features):
        decoded = self.decoder_norm(queries)
        logits = self.class_embed(decoded)
        mask_embed = self.mask_embed(decoded)
        masks = torch.einsum("nqc,nchw->nqhw", mask_embed, mask_features)
        return decoded, logits, masks

    def forward(self, mask_features, memory):
        n = memory.shape[0]
        memory_pos = self.position_embedding(memory)
        memory = memory.flatten(2).transpose(1, 2)
        tgt = self.query_feat.weight[None].expand(n, -1, -1)
        query_pos = self.query_embed.weight[None].expand(n, -1, -1)
        for layer in self.layers:
            tgt = layer(tgt, query_pos, memory, memory_pos)
        embeds, logits, masks = self.predict(tgt, mask_features)
        return {"pred_embds": embeds, "pred_logits": logits, "pred_masks": masks}

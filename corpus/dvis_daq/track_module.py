"""DAQ-like tracker: instance sequences carried across frames.

Each frame, the last embedding of every live sequence is read out and refined by
attending to the current frame's queries; frame queries taken by a sequence are
masked out, the rest may start new sequences. A disappearance head says whether
a sequence is visible in the frame. During training, the queries are given
target ids in three stages (first frame, middle frames, last frame).
"""
import torch
from torch import nn
from torch.nn import functional as F

from .segmenter import MLP, DecoderLayer


def ids_to_tensor(ids, device):
    """Sequence ids as an int64 tensor on ``device``."""
    return torch.as_tensor(ids, dtype=torch.int64).to("cuda")


class InstanceSequence:
    """One tracked instance: its per-frame embeddings, position embeddings and visibility."""

    def __init__(self, seq_id, start_frame, gt_id=-1):
        self.seq_id = seq_id
        self.start_frame = start_frame
        self.gt_id = gt_id
        self.embeds = []
        self.pos_embeds = []
        self.appearance = []

    def append(self, embed, pos_embed, visible):
        self.embeds.append(embed)
        self.pos_embeds.append(pos_embed)
        self.appearance.append(bool(visible))


class DAQTracker(nn.Module):
    def __init__(self, *, hidden_dim, num_classes, nheads, dim_feedforward, max_sequences,
                 pos_chunk_size, disappear_thresh):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_classes = num_classes
        self.max_sequences = max_sequences
        self.pos_chunk_size = pos_chunk_size
        self.disappear_thresh = disappear_thresh
        self.track_layer = DecoderLayer(hidden_dim, nheads, dim_feedforward)
        self.pos_proj = nn.Linear(hidden_dim, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, hidden_dim, 3)
        self.disappear_embed = nn.Linear(hidden_dim, 1)
        self.sequences = []
        self.next_seq_id = 0

    def reset(self):
        self.sequences = []
        self.next_seq_id = 0

    # ----------------------------------------------------------------- readout
    def readout_last_embeds(self, frame_embeds):
        """Last embedding of each live sequence, [S, 1, C]."""
        if len(self.sequences) == 0:
            return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")
        return torch.stack([seq.embeds[-1] for seq in self.sequences], dim=0)[:, None, :]

    def readout_last_pos_embeds(self, frame_embeds):
        """Last position embedding of each live sequence, [S, 1, C]."""
        if len(self.sequences) == 0:
            return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")
        return torch.stack([seq.pos_embeds[-1] for seq in self.sequences], dim=0)[:, None, :]

    def readout_seq_ids(self, frame_embeds):
        """Ids of the live sequences, [S]."""
        if len(self.sequences) == 0:
            return torch.empty(size=(0, ), dtype=torch.int64).to("cuda")
        return ids_to_tensor([seq.seq_id for seq in self.sequences], frame_embeds.device)

    # ------------------------------------------------------ position embeddings
    def mask_pooled_pos_embeds(self, mask, mask_features):
        """Average the mask features under each query's binarised mask.

        mask: [1, Q, h, w] logits, mask_features: [1, C, h, w]. Queries are
        processed in chunks to bound memory. Returns [Q, C].
        """
        pooled = []
        for start in range(0, mask.shape[1], self.pos_chunk_size):
            end = min(start + self.pos_chunk_size, mask.shape[1])
            seg_mask = (mask[:, start:end, :, :].sigmoid() > 0.5).to("cuda")
            weights = seg_mask.to(mask_features.dtype)
            area = weights.sum(dim=(2, 3)).clamp(min=1.0)
            feats = torch.einsum("bqhw,bchw->bqc", weights, mask_features) / area[..., None]
            pooled.append(feats)
        return self.pos_proj(torch.cat(pooled, dim=1))[0]

    # -------------------------------------------------------- target activation
    def prepare_query_targets(self, ms_outputs, seq_gt_ids, cand_gt_ids, present_ids, stage):
        """Target id and activation of each query (tracked first, then candidates).

        Stage 1 (first frame): candidates matched to a ground-truth instance get its id.
        Stage 2 (middle frames): additionally, tracked queries keep their sequence's id
        and are active while that instance is visible. Stage 3 (last frame): tracked
        queries are all active, so a vanished instance is supervised as no-object.
        """
        num_tracked = len(seq_gt_ids)
        target_ids = torch.full(size=(ms_outputs.shape[1], ),
                                fill_value=-1).to("cuda")
        activated_queries_bool = torch.ones(size=(ms_outputs.shape[1], )).to("cuda") < 0
        tracked_ids = set(seq_gt_ids)
        for j, gt_id in enumerate(cand_gt_ids):
            if gt_id >= 0 and gt_id not in tracked_ids:
                target_ids[num_tracked + j] = torch.as_tensor(gt_id).to("cuda")
                activated_queries_bool[num_tracked + j] = True
        if stage >= 2:
            for i, gt_id in enumerate(seq_gt_ids):
                target_ids[i] = torch.as_tensor(gt_id).to("cuda")
                activated_queries_bool[i] = gt_id in present_ids
        if stage >= 3:
            activated_queries_bool[:num_tracked] = True
        return target_ids, activated_queries_bool

    # ------------------------------------------------------------------- frame
    def predict(self, embeds, mask_features):
        logits = self.class_embed(embeds)
        masks = torch.einsum("qc,chw->qhw", self.mask_embed(embeds), mask_features)
        return logits, masks

    def forward_frame(self, frame_embeds, frame_masks, mask_features, frame_idx, num_frames,
                      frame_targets=None):
        """Track one frame.

        frame_embeds [fQ, C], frame_masks [fQ, h, w] (logits), mask_features [C, h, w].
        frame_targets (training only): dict with "cand_gt_ids" (gt id matched to
        each frame query or -1) and "present_ids" (ids visible in the frame).
        Returns the per-query predictions of this frame and the sequence each belongs to.
        """
        fQ = frame_embeds.shape[0]
        frame_pos = self.mask_pooled_pos_embeds(frame_masks[None], mask_features[None])
        last_embeds = self.readout_last_embeds(frame_embeds)
        last_pos = self.readout_last_pos_embeds(frame_embeds)
        seq_ids = self.readout_seq_ids(frame_embeds)
        num_tracked = seq_ids.shape[0]

        # Disappearance modelling: a frame query taken by a live sequence cannot
        # start a new one; the sequence itself may be judged invisible.
        disappear_fq_mask = torch.zeros(size=(fQ, ), dtype=torch.bool).to("cuda")
        if num_tracked > 0:
            tracked = self.track_layer(
                last_embeds.transpose(0, 1), last_pos.transpose(0, 1), frame_embeds[None], frame_pos[None]
            )[0]
            sim = F.normalize(tracked, dim=-1) @ F.normalize(frame_embeds, dim=-1).t()
            taken = sim.argmax(dim=1)
            disappear_fq_mask[taken] = True
            select = F.one_hot(taken, fQ).to(frame_pos.dtype)
            tracked_pos = select @ frame_pos
            disappear_logits = self.disappear_embed(tracked)[:, 0]
        else:
            tracked = last_embeds[:, 0, :]
            tracked_pos = last_pos[:, 0, :]
            disappear_logits = tracked.sum(dim=-1)

        cand_index = torch.nonzero(~disappear_fq_mask).flatten().tolist()
        cand_embeds = frame_embeds[~disappear_fq_mask]
        cand_pos = frame_pos[~disappear_fq_mask]
        ms_outputs = torch.cat([tracked, cand_embeds], dim=0)[None]

        seq_gt_ids = [seq.gt_id for seq in self.sequences]
        if frame_targets is not None:
            stage = 1 if frame_idx == 0 else (3 if frame_idx == num_frames - 1 else 2)
            cand_gt_ids = [frame_targets["cand_gt_ids"][q] for q in cand_index]
            target_ids, activated = self.prepare_query_targets(
                ms_outputs, seq_gt_ids, cand_gt_ids, frame_targets["present_ids"], stage
            )
            spawn = [bool(activated[num_tracked + j]) for j in range(len(cand_index))]
        else:
            target_ids, activated = None, None
            spawn = [True] * len(cand_index)

        # Update the live sequences, then start new ones.
        visible = (disappear_logits.sigmoid() < self.disappear_thresh).tolist()
        for i, seq in enumerate(self.sequences):
            seq.append(tracked[i], tracked_pos[i], visible[i])
        kept = list(range(num_tracked))
        for j, do_spawn in enumerate(spawn):
            if not do_spawn or len(self.sequences) >= self.max_sequences:
                continue
            gt_id = int(target_ids[num_tracked + j]) if target_ids is not None else -1
            seq = InstanceSequence(self.next_seq_id, frame_idx, gt_id)
            self.next_seq_id += 1
            seq.append(cand_embeds[j], cand_pos[j], True)
            self.sequences.append(seq)
            kept.append(num_tracked + j)

        query_embeds = torch.cat([tracked, cand_embeds], dim=0)
        logits, masks = self.predict(query_embeds, mask_features)
        return {
            "logits": logits,
            "masks": masks,
            "kept": kept,
            "seq_ids": [seq.seq_id for seq in self.sequences],
            "visible": [seq.appearance[-1] for seq in self.sequences],
            "target_ids": target_ids,
            "activated": activated,
            "disappear_logits": disappear_logits,
            "tracked_gt_ids": seq_gt_ids,
        }

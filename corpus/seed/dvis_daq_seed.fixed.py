"""Every hardcoded device line listed in the DVIS-DAQ analysis, in realistic context.

Line numbers differ from the upstream sources; the shapes are the same.  The
expected diagnostics are in ``dvis_daq_seed.txt`` and the expected fixed text in
``dvis_daq_seed.fixed.py``.
"""
import torch
from torch import nn
from torch.nn import functional as F


class VideoInstanceSequence:
    def __init__(self, start_time, matched_gt_id=-1):
        self.sT = start_time
        self.gt_id = matched_gt_id
        self.embeds = []
        self.pos_embeds = []
        self.pred_logits = []


class VideoInstanceCutter(nn.Module):
    @property
    def device(self):
        """The device of the first parameter or buffer (the CPU if there is none)."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def __init__(self, hidden_dim=32, num_queries=10):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_queries = num_queries
        self.video_ins_hub = dict()
        self.gt_ins_hub = dict()
        self.track_queries = nn.Embedding(num_queries, hidden_dim)

    def readout(self, read_type="last"):
        embeds, pos_embeds = [], []
        for seq in self.video_ins_hub.values():
            if read_type == "last":
                embeds.append(seq.embeds[-1])
                pos_embeds.append(seq.pos_embeds[-1])
        if len(embeds) == 0:
            return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32, device=self.device)
        return torch.stack(embeds, dim=0).unsqueeze(1)

    def readout_pos(self, frame_embeds: torch.Tensor):
        pos = [seq.pos_embeds[-1] for seq in self.video_ins_hub.values()]
        if len(pos) == 0:
            return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32, device=frame_embeds.device)
        return torch.stack(pos, dim=0).unsqueeze(1) + frame_embeds.mean()

    def readout_ids(self, frame_embeds: torch.Tensor):
        ids = [seq.gt_id for seq in self.video_ins_hub.values()]
        if len(ids) == 0:
            return torch.empty(size=(0, ), dtype=torch.int64, device=frame_embeds.device)
        return torch.as_tensor(ids, dtype=torch.int64, device=frame_embeds.device)

    def disappear_mask(self, frame_embeds: torch.Tensor, disappear_ids):
        fQ = frame_embeds.shape[0]
        disappear_fq_mask = torch.zeros(size=(fQ, ), dtype=torch.bool, device=frame_embeds.device)
        disappear_fq_mask[disappear_ids] = True
        return disappear_fq_mask

    def stage_targets(self, ms_outputs: torch.Tensor, matched_ids, stage=1):
        num_q = ms_outputs.shape[1]
        target_ids = torch.full(size=(num_q, ),
                                fill_value=-1, device=ms_outputs.device)
        activated_queries_bool = torch.ones(size=(ms_outputs.shape[1], ), device=ms_outputs.device) < 0
        for i, gt in matched_ids:
            target_ids[i] = gt
            activated_queries_bool[i] = stage > 1
        return target_ids, activated_queries_bool

    def mask_pool(self, mask: torch.Tensor, embeds: torch.Tensor, chunk=2):
        pooled = []
        for start in range(0, mask.shape[1], chunk):
            end = start + chunk
            seg_mask = (mask[:, start:end, :, :].sigmoid() > 0.5).to(embeds.device)
            pooled.append(torch.einsum("qthw,qc->qtc", seg_mask.float(), embeds))
        return torch.cat(pooled, dim=1)


class DVIS_DAQ_offline(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.register_buffer("pixel_mean", torch.zeros(3, 1, 1), False)
        self.sem_seg_head = nn.Module()
        self.sem_seg_head.num_classes = num_classes

    @property
    def device(self):
        return self.pixel_mean.device

    def full_logits(self, num_frames):
        full_logits = torch.ones(num_frames, self.sem_seg_head.num_classes + 1, dtype=torch.float32, device=self.device) * -1e4
        return F.softmax(full_logits, dim=-1)

    def inference_video(self, scores, pred_masks, seq_id_list, T, num_left, num_frames):
        if len(seq_id_list) == 0:
            padding_masks = torch.zeros(size=(1, 0, T), dtype=torch.bool, device=self.device)
            seq_id_tensor = torch.tensor([], dtype=torch.int32, device=self.device)
            return padding_masks, seq_id_tensor
        seq_id_tensor = torch.tensor(seq_id_list, dtype=torch.int32, device=self.device)
        topk_indices = torch.arange(scores.shape[0], device=self.device)
        naive_padding_masks = torch.ones(size=(num_left, num_frames), device=self.device) < 0
        return seq_id_tensor, topk_indices, naive_padding_masks

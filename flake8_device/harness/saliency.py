"""Input-gradient saliency figure: fixed model on the CPU beside the reference
(the original under the virtual accelerator) and their difference."""

from __future__ import annotations

from typing import Any, Dict, Optional

MAX_FRAMES = 3


def _saliency(grad):
    """|grad| reduced to one 2-D map: max over the channel axis of a CHW frame."""
    g = grad.detach().abs().float()
    while g.ndim > 2:
        g = g.amax(dim=0)
    return g


def _image(frame):
    f = frame.detach().float()
    if f.ndim == 3 and f.shape[0] in (1, 3):
        f = f.permute(1, 2, 0)
        if f.shape[-1] == 1:
            f = f[..., 0]
    elif f.ndim > 2:
        while f.ndim > 2:
            f = f[0]
    lo, hi = float(f.min()), float(f.max())
    return ((f - lo) / (hi - lo if hi > lo else 1.0)).numpy()


def saliency_figure(results: Dict[str, Any], path: str, inputs, api, which: str = "train") -> Optional[Dict[str, Any]]:
    """Write the PNG to ``path``; return a description, or None without both results."""
    fixed = results.get(f"fixed_cpu_{which}")
    ref = results.get(f"orig_virtual_{which}")
    if fixed is None or ref is None or not fixed.ok or not ref.ok or not fixed.grads:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = api.frames(inputs)
    n = min(MAX_FRAMES, len(fixed.grads), len(ref.grads))
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.2 * n), squeeze=False)
    max_diff = 0.0
    for i in range(n):
        s_fix = _saliency(fixed.grads[i][1])
        s_ref = _saliency(ref.grads[i][1])
        diff = (s_fix - s_ref).abs()
        max_diff = max(max_diff, float(diff.max()))
        vmax = float(max(s_fix.max(), s_ref.max())) or 1.0
        panels = [
            (_image(frames[i]) if i < len(frames) else None, f"frame {i}: input", None, None),
            (s_fix.numpy(), "fixed, CPU: |d obj / d input|", 0.0, vmax),
            (s_ref.numpy(), "original, virtual accelerator", 0.0, vmax),
            (diff.numpy(), f"|difference| (max {float(diff.max()):.3g})", 0.0, max(float(diff.max()), vmax * 1e-6)),
        ]
        for ax, (img, title, lo, hi) in zip(axes[i], panels):
            ax.set_axis_off()
            if img is None:
                continue
            if lo is None:
                ax.imshow(img)
            else:
                im = ax.imshow(img, cmap="magma" if "difference" not in title else "viridis", vmin=lo, vmax=hi)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=9)
    fig.suptitle(
        f"Input-gradient saliency ({which} path, max over channels): fixed on CPU vs reference; "
        f"max |difference| = {max_diff:.3g}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"path": path, "path_kind": which, "frames": n, "max_abs_saliency_diff": max_diff}

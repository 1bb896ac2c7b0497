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
    ref = results.get(f"orig_virt_{which}")
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
        _row(fig, axes[i], _image(frames[i]) if i < len(frames) else None, s_fix, s_ref, diff, i,
             "fixed, CPU: |d obj / d input|", "original, virtual accelerator")
    fig.suptitle(
        f"Input-gradient saliency ({which} path, max over channels): fixed on CPU vs reference; "
        f"max |difference| = {max_diff:.3g}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"path": path, "path_kind": which, "frames": n, "max_abs_saliency_diff": max_diff}


def _row(fig, axes, image, s_fix, s_ref, diff, i: int, fix_title: str, ref_title: str) -> None:
    """One frame: input, both saliency maps on one colour scale, and their difference.

    The difference panel's colour bar spans exactly 0..max |difference|; an
    all-zero difference is drawn as an empty panel that says so, never with a
    colour scale that suggests values which are not there.
    """
    vmax = float(max(s_fix.max(), s_ref.max()))
    dmax = float(diff.max())
    for ax in axes:
        ax.set_axis_off()
    if image is not None:
        axes[0].imshow(image)
        axes[0].set_title(f"frame {i}: input", fontsize=9)
    if vmax == 0.0:
        for ax, title in ((axes[1], fix_title), (axes[2], ref_title)):
            ax.text(0.5, 0.5, "zero gradient\non this frame", ha="center", va="center", fontsize=9)
            ax.set_title(title, fontsize=9)
    else:
        for ax, img, title in ((axes[1], s_fix, fix_title), (axes[2], s_ref, ref_title)):
            im = ax.imshow(img.numpy(), cmap="magma", vmin=0.0, vmax=vmax)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=9)
    if dmax == 0.0:
        axes[3].text(0.5, 0.5, "identical\n(every element's\ndifference is 0)", ha="center", va="center",
                     fontsize=9)
        axes[3].set_title("|difference|: 0 everywhere", fontsize=9)
    else:
        im = axes[3].imshow(diff.numpy(), cmap="viridis", vmin=0.0, vmax=dmax)
        fig.colorbar(im, ax=axes[3], fraction=0.046, pad=0.04)
        axes[3].set_title(f"|difference| (max {dmax:.3g})", fontsize=9)


def project_saliency_figure(fixed: Dict[str, Any], ref: Dict[str, Any], path: str) -> Optional[Dict[str, Any]]:
    """The saliency figure of a project run: fixed on the CPU vs the original
    under the virtual accelerator, from the ``saliency`` sections of both results."""
    a = fixed.get("sections", {}).get("saliency") or []
    b = ref.get("sections", {}).get("saliency") or []
    if not a or not b:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = fixed.get("frames") or []
    n = min(MAX_FRAMES, len(a), len(b))
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.0 * n), squeeze=False)
    max_diff = 0.0
    zero_frames = 0
    for i in range(n):
        s_fix, s_ref = _saliency(a[i][1]), _saliency(b[i][1])
        diff = (s_fix - s_ref).abs()
        max_diff = max(max_diff, float(diff.max()))
        zero_frames += int(float(s_fix.max()) == 0.0)
        _row(fig, axes[i], _image(frames[i]) if i < len(frames) else None, s_fix, s_ref, diff, i,
             "fixed, CPU: |d obj / d frame|", "original, virtual accelerator")
    fig.suptitle(
        "Inference-path saliency (gradient of the sum of the captured tensors' means w.r.t. each input frame, "
        f"max over channels); max |difference| = {max_diff:.3g}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"path": path, "path_kind": "infer", "frames": n, "frames_with_zero_saliency": zero_frames,
            "max_abs_saliency_diff": max_diff}

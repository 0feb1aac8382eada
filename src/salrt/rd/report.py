"""``rd.md`` (tables) and the RD-curve plots of a ``salrt rd`` run, from its ``rd.json`` data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {
    "psnr_y": "PSNR-Y (dB)",
    "ssim": "SSIM",
    "vmaf": "VMAF",
    "ew_psnr_gt": "EW-PSNR, ground truth (dB)",
    "ew_psnr_model": "EW-PSNR, model-weighted: circular (dB)",
}


def _bd(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    if cell["value"] is None:
        return f"n/a ({cell['reason']})"
    flag = "*" if cell["reason"] else ""
    return f"{cell['value']:+.1f}%{flag}"


def markdown(data: dict[str, Any]) -> str:
    """The report: one BD-rate table per codec (methods x metrics, against ``plain``), then every
    measured point."""
    w, h = data["size"]
    lines = [
        f"# Rate-distortion: {Path(data['input']).name}",
        "",
        f"{data['frames']} frames, {w}x{h}, {data['fps']:g} fps; libvmaf {data['libvmaf']} ({data['vmaf_model']}); "
        f"BD-rate by {data['bd_method']} against each encoder's plain encode (negative = fewer bits at equal "
        "quality). `*`: the curves overlap over less than half the quality range.",
        "",
    ]
    if data.get("model"):
        m = data["model"]
        lines += [f"Model maps: {m['name']} on {m['backend']}, stride {m['stride']}, {m['seconds']:.1f} s.", ""]
    if data.get("map_cc_vs_truth"):
        cc = ", ".join(f"{k} {v:.3f}" for k, v in data["map_cc_vs_truth"].items())
        lines += [f"Maps against the ground truth (mean CC per frame): {cc}.", ""]
    if not data.get("complete"):
        lines += ["**Incomplete run**: the codecs below are those finished.", ""]
    for name, c in data["codecs"].items():
        metrics = [k for k in LABELS if any(k in p for p in c["points"])]
        lines += [f"## {name}", ""]
        if c.get("roi"):
            r, route = c["roi"], c["roi_route"]
            lines += [
                f"ROI: strength {r['strength']:g}, max offset {r['max_offset']:g}, floor {r['floor']:g}, smoothing "
                f"{r['smoothing']:g} ({route['unit']}, {route['block']}x{route['block']} blocks).",
                "",
            ]
        if c["dropped"]:
            lines += ["Rate points dropped: " + "; ".join(c["dropped"]) + ".", ""]
        lines += ["| method | " + " | ".join(LABELS[k] for k in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for method, cells in c.get("bd_rate", {}).items():
            lines.append(f"| {method} | " + " | ".join(_bd(cells.get(k)) for k in metrics) + " |")
        lines += ["", "| method | rate | kbit/s | encode fps | " + " | ".join(metrics) + " |"]
        lines.append("|---" * (len(metrics) + 4) + "|")
        for p in c["points"]:
            vals = " | ".join(f"{p[k]:.4f}" if k == "ssim" else f"{p[k]:.2f}" for k in metrics)
            lines.append(f"| {p['method']} | {p['rate']} | {p['kbps']:.1f} | {p['encode_fps']:.0f} | {vals} |")
        lines.append("")
    return "\n".join(lines)


def plots(data: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per codec: kbit/s against each metric, one curve per method."""
    from salrt.errors import require

    require("matplotlib", "RD-curve plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, c in data["codecs"].items():
        metrics = [k for k in LABELS if any(k in p for p in c["points"])]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for method in dict.fromkeys(p["method"] for p in c["points"]):
                pts = sorted((p["kbps"], p[metric]) for p in c["points"] if p["method"] == method)
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", ms=3, label=method,
                        lw=2.2 if method == "plain" else 1.2)  # fmt: skip
            ax.set_xscale("log")
            ax.set_xlabel("kbit/s")
            ax.set_title(LABELS[metric], fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{Path(data['input']).name}: {name}", fontsize=10)
        fig.tight_layout()
        path = out / f"rd_{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths

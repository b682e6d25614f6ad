"""Recall against speed for each detection preset, deface as a point, in one plot and table.

Runs ``benchmarks/faces.py`` once per preset (each run times deface beside veil on the same
images, so every ratio comes from one run), then plots the share of faces >= 16 px protected
against whole-process images/s.

    python benchmarks/faces_presets.py --out /tmp/presets          # about 10 min on 2 cores
    python benchmarks/faces_presets.py --out /tmp/presets --reuse  # only re-plot
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PRESETS = ("fast", "balanced", "thorough")
HERE = Path(__file__).resolve().parent
DEFAULT_PLOT = HERE.parent / "docs" / "faces_presets.png"


def run_presets(out: Path, extra: list[str], reuse: bool) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for preset in PRESETS:
        folder = out / preset
        if not (reuse and (folder / "results.json").exists()):
            argv = [
                sys.executable,
                str(HERE / "faces.py"),
                "--preset",
                preset,
                "--out",
                str(folder),
                "--plot",
                str(folder / "plot.png"),
                "--sheet",
                str(folder / "faces_misses.jpg"),
                *extra,
            ]
            subprocess.run(argv, check=True)
        results[preset] = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| preset | >=16 px | >=32 px | <16 px | area outside faces | PSNR outside (dB) "
        "| images/s | deface images/s (same run) | speed ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for preset, r in results.items():
        veil, deface = r["tools"]["veil"], r["tools"]["deface"]
        lines.append(
            f"| {preset} | {_pct(veil['protected_16px_up']['share'])} "
            f"| {_pct(_share_32_up(veil))} | {_pct(veil['by_height']['<16']['share'])} "
            f"| {_pct(veil['median_area_obscured_outside_faces'])} "
            f"| {veil['median_psnr_outside_regions_db']:.1f} | {veil['images_per_s']:.1f} "
            f"| {deface['images_per_s']:.1f} "
            f"| {veil['images_per_s'] / deface['images_per_s']:.2f}x |"
        )
    d = next(iter(results.values()))["tools"]["deface"]
    lines.append(
        f"| deface 1.5 | {_pct(d['protected_16px_up']['share'])} | {_pct(_share_32_up(d))} "
        f"| {_pct(d['by_height']['<16']['share'])} "
        f"| {_pct(d['median_area_obscured_outside_faces'])} "
        f"| {d['median_psnr_outside_regions_db']:.1f} | {d['images_per_s']:.1f} | | 1.00x |"
    )
    return "\n".join(lines)


def _share_32_up(tool: dict[str, Any]) -> float:
    bins = [tool["by_height"][b] for b in ("32-64", ">=64")]
    faces = sum(b["faces"] for b in bins)
    return sum(b["share"] * b["faces"] for b in bins) / faces


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for preset, r in results.items():
        veil, deface = r["tools"]["veil"], r["tools"]["deface"]
        x, y = veil["images_per_s"], 100 * veil["protected_16px_up"]["share"]
        ax.scatter([x], [y], s=60, color="#1f6f8b", zorder=3)
        ax.annotate(
            f"veil {preset}\n{y:.1f}%",
            (x, y),
            textcoords="offset points",
            xytext=(6, -4),
            fontsize=8,
        )
        dx, dy = deface["images_per_s"], 100 * deface["protected_16px_up"]["share"]
        ax.scatter([dx], [dy], s=50, color="#999999", marker="s", zorder=3)
    ax.annotate(
        "deface 1.5 (each run)",
        (dx, dy),
        textcoords="offset points",
        xytext=(6, 4),
        fontsize=8,
        color="#555555",
    )
    ax.set_xlabel("images/s, whole process (2 cores)")
    ax.set_ylabel("faces >= 16 px protected (%)")
    ax.set_title("Recall against speed per detection preset", fontsize=11, loc="left")
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    first = next(iter(results.values()))
    fig.text(
        0.01,
        0.01,
        f"{first['date']} · {first['machine']['text']} · {first['images']} "
        "images · benchmarks/faces_presets.py",
        fontsize=7,
        color="#555555",
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder")
    parser.add_argument("--reuse", action="store_true", help="reuse results.json that exist")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    args, extra = parser.parse_known_args()
    results = run_presets(args.out, extra, args.reuse)
    print(table(results))
    plot(results, args.plot)
    print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

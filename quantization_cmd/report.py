"""The fidelity table for the terminal and the self-contained HTML report.

The HTML page embeds its plots as inline SVG, so it opens offline and costs milliseconds per
plot: a histogram is one filled path (its 2048 bins on a log scale), thresholds are lines.
"""
from __future__ import annotations

import html
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tnnformat import BlobScale

from .blob_methods import BlobStats
from .calibrate import blob_stats
from .config import qmax
from .fidelity import Fidelity
from .plan import Plan
from .statistics import BINS, Statistics


def _number(value: float, digits: int = 4) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def table_rows(fidelity: Fidelity) -> List[List[str]]:
    rows = [["blob", "layer", "cosine", "SQNR dB", "max abs err"]]
    for err in fidelity.worst_first + fidelity.outputs:
        marks = (" (output)" if err in fidelity.outputs else "") + (" NaN/inf" if err.nonfinite else "")
        rows.append([err.name + marks, err.layer, _number(err.cosine, 6), _number(err.sqnr_db, 1),
                     _number(err.max_abs, 4)])
    return rows


def nonfinite_line(fidelity: Fidelity) -> Optional[str]:
    """The warning above a table in which int8 produced NaN or infinity."""
    count = fidelity.nonfinite_blobs
    if not count:
        return None
    return (f"{count} blob{'s' if count != 1 else ''} of the int8 model hold NaN or infinite values "
            "(marked NaN/inf, listed first)")


def agreement_line(fidelity: Fidelity) -> str:
    """What int8 changes in the outputs, by the measure each output calls for (output_measures)."""
    lines = [m.summary() if len(fidelity.measures) == 1 else f"{name}: {m.summary()}"
             for name, m in fidelity.measures.items()]
    return "\n".join(lines) if lines else f"{fidelity.samples} samples compared"


def format_table(fidelity: Fidelity, limit: Optional[int] = None) -> str:
    """The table as aligned text, worst blob first (all rows unless `limit`)."""
    rows = table_rows(fidelity)
    body = rows[1:]
    hidden = 0
    if limit is not None and len(body) > limit + len(fidelity.outputs):
        hidden = len(body) - limit - len(fidelity.outputs)
        body = body[:limit] + body[len(body) - len(fidelity.outputs):]
    widths = [max(len(r[i]) for r in [rows[0]] + body) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [rows[0]] + body]
    if hidden:
        lines.insert(limit + 1, f"... {hidden} more blobs (see --report) ...")
    warning = nonfinite_line(fidelity)
    return "\n".join(([warning] if warning else []) + lines + [agreement_line(fidelity)])


def _thresholds(scale: BlobScale, bits: int) -> np.ndarray:
    """|x| at which each channel clips: qmax steps from the zero point, the larger side."""
    zp, top = scale.zero_point.astype(np.float64), qmax(bits)
    return np.maximum(top - zp, top + zp) * scale.scale


def _blob_histogram(stats: BlobStats) -> tuple:
    """All channels' |x| histograms re-binned onto one axis [0, largest absmax]."""
    absmax = stats.range.absmax
    top = float(absmax.max()) if absmax.size else 0.0
    counts = stats.histogram.counts
    if top <= 0:
        return np.zeros(BINS), 1.0
    centers = (np.arange(BINS) + 0.5)[None, :] / stats.histogram.interval[:, None]
    target = np.minimum((centers * (BINS / top)).astype(np.int64), BINS - 1)
    return np.bincount(target.ravel(), weights=counts.ravel(), minlength=BINS), top


#: Plot geometry in pixels: width, height, and the margins left for the axis labels.
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 480, 176, 44, 30, 8


def _ticks(high: float) -> List[float]:
    """Up to six round values in [0, high] for the x axis."""
    if high <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(high / 5))
    step *= next(m for m in (1, 2, 5, 10) if high / (step * m) <= 5)
    return [i * step for i in range(int(high / step + 1e-9) + 1)]


def _plot(stats: BlobStats, scale: BlobScale) -> str:
    """The blob's |x| histogram (log counts) with its clipping thresholds, as an SVG element."""
    counts, top = _blob_histogram(stats)
    span = top * 1.02
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    logs = np.log10(np.maximum(counts, 1.0))
    peak = max(float(logs.max()), 1.0)
    xs = LEFT + np.arange(len(counts) + 1) * (top / len(counts) / span * plot_w)
    ys = TOP + plot_h * (1 - np.where(counts > 0, (logs + 0.3) / (peak + 0.3), 0.0))
    base = TOP + plot_h
    steps = np.column_stack([xs[:-1], ys, xs[1:], ys]).ravel()
    path = f"M{LEFT:.1f},{base:.1f} L" + " ".join(f"{v:.1f}" for v in steps) + f" {xs[-1]:.1f},{base:.1f} Z"
    parts = [f"<svg width='{WIDTH}' height='{HEIGHT}' "
             f"font-family='sans-serif' font-size='10'>",
             f"<path d='{path}' fill='#4a78b0'/>",
             f"<line x1='{LEFT}' y1='{base}' x2='{LEFT + plot_w}' y2='{base}' stroke='#333'/>"]
    thresholds = _thresholds(scale, stats.config.bits)
    opacity = max(0.15, 1.0 / math.sqrt(max(thresholds.size, 1)))
    for t in thresholds[:64]:
        x = LEFT + min(float(t), span) / span * plot_w
        parts.append(f"<line x1='{x:.1f}' y1='{TOP}' x2='{x:.1f}' y2='{base}' stroke='#d9534f' "
                     f"stroke-opacity='{opacity:.2f}'/>")
    for tick in _ticks(span):
        x = LEFT + tick / span * plot_w
        parts.append(f"<text x='{x:.1f}' y='{base + 12}' text-anchor='middle'>{tick:.4g}</text>")
    parts.append(f"<text x='{LEFT - 4}' y='{TOP + 8}' text-anchor='end'>1e{peak:.0f}</text>"
                 f"<text x='{LEFT - 4}' y='{base}' text-anchor='end'>1</text>")
    label = "clipping threshold" + ("s" if thresholds.size > 1 else "")
    parts.append(f"<text x='{LEFT + plot_w / 2:.0f}' y='{HEIGHT - 4}' text-anchor='middle'>"
                 f"|x|, count on a log scale (red: {label})</text></svg>")
    return "".join(parts)


#: An extra section of the report: its title, a sentence saying what the numbers are, the rows
#: (header first).
Section = Tuple[str, str, List[List[str]]]


def _section(section: Section) -> str:
    title, note, rows = section
    cells = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"]
    cells += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:]]
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p><table>{''.join(cells)}</table>"


def write_html(path: str, title: str, fidelity: Fidelity, statistics: Statistics,
               scales: Dict[str, BlobScale], plan: Plan, sections: Sequence[Section] = ()) -> None:
    """One self-contained page: the fidelity table, the extra sections (sensitivity, bit-width
    what-if) and every observed blob's histogram."""
    from .table import atomic_write

    stats = {blob: blob_stats(plan, statistics, blob) for blob in plan.blobs}
    rows = table_rows(fidelity)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
             "td:first-child,td:nth-child(2),th{text-align:left}.bad{background:#fbe3e3}</style>",
             f"</head><body><h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(agreement_line(fidelity))}</p>",
             f"<p class='bad'>{html.escape(nonfinite_line(fidelity) or '')}</p>" if fidelity.nonfinite_blobs else "",
             "<h2>int8 against float, worst blob first</h2><table>",
             "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"]
    for row, err in zip(rows[1:], fidelity.worst_first + fidelity.outputs):
        flag = " class='bad'" if err.nonfinite or err.cosine < 0.99 else ""
        parts.append(f"<tr{flag}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    parts.extend(_section(section) for section in sections)
    parts.append("<h2>Activation histograms and chosen thresholds</h2>")
    for blob, s in stats.items():
        method = f"{s.config.method}, {s.config.bits} bits"
        granularity = "per tensor" if s.range.per_tensor else f"per channel ({s.channels})"
        parts.append(f"<h3>{html.escape(blob)}</h3><p>{method}, {granularity}, range "
                     f"[{float(s.range.min.min()):.4g}, {float(s.range.max.max()):.4g}]</p>")
        if s.histogram is not None:
            parts.append(f"<figure aria-label='histogram of {html.escape(blob)}'>{_plot(s, scales[blob])}</figure>")
    parts.append("</body></html>")
    atomic_write(path, "\n".join(parts))



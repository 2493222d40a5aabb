"""One figure style for every isograph-gpu plot: journal sizes, a colour-blind-safe palette,
vector-friendly fonts and byte-deterministic saving.

Figures are built as bare :class:`matplotlib.figure.Figure` objects (never ``pyplot``), so no
global figure registry fills up and nothing leaks between calls; the Agg-family canvases are
chosen by ``savefig`` from the file format.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, TwoSlopeNorm
from matplotlib.figure import Figure, SubFigure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from ..config import PLOT_FORMATS
from ..io.output import atomic_write_bytes

#: journal column widths, inches
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.2

#: Okabe-Ito colours (distinguishable under the common colour-vision deficiencies)
POSITIVE_COLOR = "#D55E00"  # vermillion: r > 0, high group
NEGATIVE_COLOR = "#0072B2"  # blue: r < 0, low group
NEUTRAL_COLOR = "#7F7F7F"   # gray: undecided / not separated
ACCENT_COLOR = "#009E73"    # bluish green

#: diverging map for signed values (ColorBrewer RdBu reversed: blue < 0 < red)
DIVERGING_CMAP = "RdBu_r"

#: file formats the renderer writes and the magic bytes each file starts with
DEFAULT_DPI = 300

_SAVE_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    "svg": {"Date": None, "Creator": None},
}

STYLE_RC: dict[str, object] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 7.0,
    "axes.titlesize": 8.0,
    "axes.titleweight": "bold",
    "axes.labelsize": 7.0,
    "xtick.labelsize": 6.0,
    "ytick.labelsize": 6.0,
    "legend.fontsize": 6.0,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.0,
    "image.interpolation": "nearest",
    # colour-map the small data array, then resample the RGBA (not the other way round)
    "image.interpolation_stage": "rgba",
    # vector output keeps text as text (editable in Illustrator/Inkscape)
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    # deterministic ids in svg output
    "svg.hashsalt": "isograph-gpu",
    "path.simplify": True,
    # ids are text: a gene name or module id holding '$...$' is drawn as written, never
    # parsed as mathtext (an undefined command would fail the figure)
    "text.parse_math": False,
}


@contextmanager
def figure_style() -> Iterator[None]:
    """Apply the isograph-gpu rc settings for the duration of the block."""
    with mpl.rc_context(STYLE_RC):
        yield


P = ParamSpec("P")
R = TypeVar("R")


def styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: build the figure under :func:`figure_style` (fonts are fixed at creation)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with figure_style():
            return fn(*args, **kwargs)

    return wrapper


def panel_letter(container: Figure | SubFigure, letter: str) -> None:
    """Bold panel letter (A, B, ...) in the top-left corner of a (sub)figure."""
    container.text(0.0, 1.0, letter, fontsize=10, fontweight="bold", ha="left", va="top")


def title_axes(ax: Axes, text: str, standalone: bool) -> None:
    """Title of a single-axes plot: on a figure of its own, a figure title at the left edge
    (long tick labels then cannot push it off the page); inside a caller's layout, the
    axes title."""
    if standalone:
        ax.figure.suptitle(text, x=0.0, ha="left", fontsize=8, fontweight="bold")
    else:
        ax.set_title(text, loc="left")


def empty_axes(ax: Axes, message: str) -> Axes:
    """Blank axes carrying a short gray note (a panel that has nothing to show)."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color=NEUTRAL_COLOR,
            transform=ax.transAxes, wrap=True)
    return ax


def new_figure(width_in: float, height_in: float) -> Figure:
    """A bare Figure (no pyplot registry) of the given size in inches."""
    fig = Figure(figsize=(float(width_in), float(height_in)), layout="constrained")
    # Agg explicitly: the layout solve and the png draw then share one renderer (and its
    # text-metrics cache) instead of each building a throwaway canvas
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.05, h_pad=0.04, wspace=0.02, hspace=0.02)
    return fig


def diverging_norm(limit: float) -> TwoSlopeNorm:
    """Symmetric colour limits ``[-limit, +limit]`` centred at 0 (limit > 0)."""
    limit = float(limit) if np.isfinite(limit) and limit > 0 else 1.0
    return TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)


def diverging_cmap() -> Colormap:
    """The diverging colour map with NaN cells drawn light gray."""
    return mpl.colormaps[DIVERGING_CMAP].with_extremes(bad="#E6E6E6")


def sign_color(value: float) -> str:
    """Bar colour of a signed statistic: vermillion for > 0, blue for < 0, gray otherwise."""
    if value > 0:
        return POSITIVE_COLOR
    if value < 0:
        return NEGATIVE_COLOR
    return NEUTRAL_COLOR


def freeze_layout(fig: Figure, dpi: int = DEFAULT_DPI) -> None:
    """Run the constrained layout once and pin the axes where it put them, so every format
    saved afterwards shares one geometry (constrained layout starts from the current
    positions, so re-running it per save would make a pdf depend on an earlier png)."""
    engine = fig.get_layout_engine()
    if not isinstance(engine, ConstrainedLayoutEngine):
        return
    fig.set_dpi(dpi)  # measure text at the resolution it is rendered at (hinting)
    with figure_style():
        engine.execute(fig)  # only the layout solve: no artist is drawn here
    # no engine at all (not "none", which leaves a placeholder engine behind): with any
    # engine set, savefig runs a whole extra draw pass before the real one
    with mpl.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
    _round_geometry(fig)


def _round_geometry(container: Figure | SubFigure, decimals: int = 6) -> None:
    """Round subfigure boxes and axes positions (figure fractions) to ``decimals``: the
    constrained solver's last-bit noise (it varies with set order between runs) would
    otherwise leak into the bytes of vector files. +0.0 turns -0.0 into 0.0."""
    for sub in container.subfigs:
        box = sub.bbox_relative
        box.set_points(np.round(box.get_points(), decimals) + 0.0)
        _round_geometry(sub, decimals)
    for ax in container.axes:
        ax.set_position(np.round(ax.get_position(original=False).bounds, decimals) + 0.0,
                        which="both")

def figure_bytes(fig: Figure, fmt: str, dpi: int = DEFAULT_DPI) -> bytes:
    """Encode ``fig`` as ``fmt`` (png/pdf/svg) with fixed metadata: same figure, same bytes."""
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose from {list(PLOT_FORMATS)}")
    freeze_layout(fig, dpi)
    if fmt == "png":
        return _png_bytes(fig, dpi)
    buf = io.BytesIO()
    with figure_style():
        # no bbox_inches="tight": constrained layout already fits the content, and the page
        # keeps its exact journal width (and the save skips a second full draw)
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=_SAVE_METADATA[fmt],
                    facecolor="white")
    return buf.getvalue()


#: zlib level of png output: 3 is ~4x faster than Pillow's default 6 with adaptive filters
#: and gives files no larger on figures (long runs of white compress well unfiltered)
PNG_COMPRESSION = 3


def _png_bytes(fig: Figure, dpi: int) -> bytes:
    """Draw ``fig`` with Agg at ``dpi`` on white and encode it as a PNG: the pixels
    ``savefig(format="png")`` draws, stored as RGB (RGBA only if some pixel is not opaque),
    no row filter, zlib level :data:`PNG_COMPRESSION`, the resolution in a pHYs chunk and no
    text chunks."""
    original_canvas, original_dpi = fig.canvas, fig.dpi
    original_face = fig.patch.get_facecolor()
    canvas = original_canvas if type(original_canvas) is FigureCanvasAgg \
        else FigureCanvasAgg(fig)
    try:
        fig.set_dpi(dpi)
        fig.patch.set_facecolor("white")
        with figure_style():
            canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        return encode_png(rgba, dpi)
    finally:
        fig.patch.set_facecolor(original_face)
        fig.set_dpi(original_dpi)
        if canvas is not original_canvas:
            fig.set_canvas(original_canvas)


def encode_png(rgba: np.ndarray, dpi: float) -> bytes:
    """PNG bytes of an (h, w, 4) uint8 image: colour type 2 (RGB) when every alpha is 255,
    else 6 (RGBA); 8 bits, filter type 0 on every row, pHYs = ``dpi`` in pixels per metre
    (rounded as Pillow does). Deterministic: same pixels, same bytes."""
    height, width = rgba.shape[:2]
    opaque = bool((rgba[..., 3] == 255).all())
    pixels = rgba[..., :3] if opaque else rgba
    channels = pixels.shape[2]
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = 0  # filter type of each row
    rows[:, 1:].reshape(height, width, channels)[...] = pixels  # one copy, into a view
    per_metre = int(dpi / 0.0254 + 0.5)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data \
            + struct.pack(">I", zlib.crc32(tag + data))

    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2 if opaque else 6, 0, 0, 0)),
        chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        chunk(b"IDAT", zlib.compress(rows.data, PNG_COMPRESSION)),
        chunk(b"IEND", b""),
    ))


def save_figure(fig: Figure, stem: Path, formats: Sequence[str],
                dpi: int = DEFAULT_DPI) -> list[Path]:
    """Write ``fig`` as ``<stem>.<fmt>`` for each format (atomic per file); return the paths."""
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write_bytes(path, figure_bytes(fig, fmt, dpi=dpi))
        paths.append(path)
    return paths

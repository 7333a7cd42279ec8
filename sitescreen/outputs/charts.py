"""Charts of a run: shares of sites per risk level, and static maps of the sites.

Two kinds of figure, both drawn with Matplotlib's object API (``Figure`` plus the Agg canvas;
pyplot is never imported, so no figure lives on in global state):

- **Shares chart** per hazard or composite, in the form of corporate climate-report figures
  (SenseTime's 2023 report shows one stacked bar per scenario and year): one horizontal bar per
  scenario x year, split into the share of screened sites at each level 1-5 on a fixed
  green-to-red ramp, percentages written in the segments; beside the bars, the
  medium-and-above share as a bar of its own with its ensemble range as a whisker, and the
  sites not screened (no data, unresolved) in a separate panel so they never dilute the
  percentages unseen.
- **Site map** per hazard, scenario and year: sites coloured by level over Natural Earth
  1:110m country outlines shipped in ``sitescreen/outputs`` (public domain), labelled with
  their names (or ids) when there are few enough to read. No web tiles.

Output is deterministic: the same inputs give byte-identical PNG and SVG (no dates in the
metadata, a fixed ``svg.hashsalt``, a fixed font), so reruns do not show up as changes.
Charts of synthetic demo data say so in their title, in a banner and in a watermark.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import math
import textwrap
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources

import matplotlib
import numpy as np
import pandas as pd
import shapely
from matplotlib import cbook
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.backends.backend_mixed import MixedModeRenderer
from matplotlib.backends.backend_svg import RendererSVG
from matplotlib.colors import to_rgba_array
from matplotlib.figure import Figure
from matplotlib.ft2font import RenderMode
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextToPath

from sitescreen.aggregate import SiteResults
from sitescreen.classify import RiskLevel
from sitescreen.data.sources import is_synthetic
from sitescreen.outputs.styling import (
    BOUNDARY_CREDIT,
    LEVEL_COLOURS,
    NO_DATA_COLOUR,
    SYNTHETIC_RED,
    SYNTHETIC_TITLE,
    TEXT_ON,
    UNRESOLVED_COLOUR,
    hazard_order,
    map_chart_name,
    map_layers,
    shares_chart_name,
)
from sitescreen.outputs.summary import approximate_pathways, pct_text, range_text
from sitescreen.scenarios import scenario_rank, scenario_title

__all__ = [
    "render_charts",
    "chart_names",
    "shares_figure",
    "map_figure",
    "map_layers",
    "hazard_order",
    "figure_bytes",
    "shares_chart_name",
    "map_chart_name",
    "LEVEL_COLOURS",
    "NO_DATA_COLOUR",
    "BOUNDARY_CREDIT",
]

log = logging.getLogger(__name__)

# The medium-and-above bar: dark, so it does not read as one of the level colours.
_MEDIUM_PLUS_COLOUR = "#525252"

# Fixed settings so output does not depend on the user's matplotlibrc, and no random ids.
_RC = {
    "svg.hashsalt": "sitescreen",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "hatch.linewidth": 0.6,
    "axes.linewidth": 0.6,
}
# rc_context mutates matplotlib's global rcParams while it is active; the lock keeps two
# threads of one process (Prefect task runners) from interleaving their settings.
_LOCK = threading.Lock()

_LEVELS = tuple(int(level) for level in RiskLevel if level > 0)


def _num(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


# ----------------------------------------------------------------------------- text caches

# Most of a chart's drawing time is text: laying out each string, measuring it, and rendering
# every glyph (FreeType) again in every figure, though the 24 figures of a run repeat the same
# few hundred strings. The canvas below keeps those results for the process: a string's
# layout and extent (they depend on the string, font, size and dpi only) and each rendered
# glyph bitmap, keyed by its sub-pixel offset (1/64 pixel): FreeType rasterises an outline
# moved by whole pixels to the same bitmap, moved. The steps are matplotlib 3.11's own
# (``RendererAgg.draw_text``, ``TextToPath.get_glyphs_with_font``), so the files are byte for
# byte those of a plain canvas (a test compares them). All of it runs under ``_LOCK``.
_TEXT_CACHE_LIMIT = 50_000  # entries per cache; a run of charts needs a few thousand
_EXTENTS: dict[tuple, tuple[float, float, float]] = {}
_LAYOUTS: dict[tuple, list[tuple]] = {}
_GLYPHS: dict[tuple, tuple[np.ndarray, int, int]] = {}
_PATH_LAYOUTS: dict[tuple, tuple[list[tuple], dict]] = {}


def _remember(cache: dict, key: tuple, value):
    if len(cache) >= _TEXT_CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def _text_features(mtext) -> tuple:
    if mtext is None:
        return None, None
    return mtext.get_fontfeatures(), mtext.get_language()


class _CachedRendererAgg(RendererAgg):
    """:class:`RendererAgg` that keeps text extents, layouts and glyph bitmaps (above)."""

    def get_text_width_height_descent(self, s, prop, ismath):
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        key = (s, hash(prop), self.dpi, get_hinting_flag())
        hit = _EXTENTS.get(key)
        return hit if hit is not None else _remember(
            _EXTENTS, key, super().get_text_width_height_descent(s, prop, ismath))

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        flags = get_hinting_flag()
        features, language = _text_features(mtext)
        key = (s, hash(prop), self.dpi, flags, features, language)
        items = _LAYOUTS.get(key)
        if items is None:
            font = self._prepare_font(prop)
            items = _remember(_LAYOUTS, key, [
                (i.ft_object, i.glyph_index, i.x, i.y)
                for i in font._layout(s, flags=flags, features=features, language=language)])
        size = prop.get_size_in_points()
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        antialiased = gc.get_antialiased()
        height = self.height
        matrix = None
        for font, glyph, dx, dy in items:  # as RendererAgg._draw_text_glyphs_and_boxes
            px = round(0x40 * (x + dx * cos - dy * sin))
            py = round(0x40 * (height - y + dx * sin + dy * cos))  # FreeType's y is upwards
            gkey = (font, size, self.dpi, glyph, angle, px & 63, py & 63, antialiased, flags)
            hit = _GLYPHS.get(gkey)
            if hit is None:
                if matrix is None:
                    matrix = (0x10000 * np.array([[cos, -sin], [sin, cos]])).round().astype(int)
                font.set_size(size, self.dpi)
                font._set_transform(matrix, [px & 63, py & 63])
                bitmap = font._render_glyph(
                    glyph, flags, RenderMode.NORMAL if antialiased else RenderMode.MONO)
                buffer = np.array(bitmap.buffer)
                if not antialiased:
                    buffer *= 0xff
                hit = _remember(_GLYPHS, gkey, (buffer, bitmap.left, bitmap.top))
            buffer, left, top = hit
            self._renderer.draw_text_image(
                buffer, left + (px >> 6), int(height) - (top + (py >> 6)) + buffer.shape[0],
                0, gc)


class _CachedTextToPath(TextToPath):
    """:class:`TextToPath` (SVG text as paths) that keeps text extents and glyph layouts."""

    def get_text_width_height_descent(self, s, prop, ismath):
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        key = (s, hash(prop))
        hit = _EXTENTS.get(key)
        return hit if hit is not None else _remember(
            _EXTENTS, key, super().get_text_width_height_descent(s, prop, ismath))

    def get_glyphs_with_font(self, font, s, glyph_map=None, return_new_glyphs_only=False, *,
                             features=None, language=None):
        key = (font, s, features, language)
        hit = _PATH_LAYOUTS.get(key)
        if hit is None:
            info, paths, _ = super().get_glyphs_with_font(font, s, features=features,
                                                          language=language)
            hit = _remember(_PATH_LAYOUTS, key, (info, paths))
        info, paths = hit
        if glyph_map is None:
            glyph_map = {}
        new = {} if return_new_glyphs_only else glyph_map
        for glyph_repr, *_ in info:
            if glyph_repr not in glyph_map:
                new[glyph_repr] = paths[glyph_repr]
        return list(info), new, []


_TEXT_TO_PATH = _CachedTextToPath()


class _CachedRendererSVG(RendererSVG):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._text2path = _TEXT_TO_PATH


class _Canvas(FigureCanvasAgg):
    """The Agg canvas of every chart, drawing text through the caches; SVG as
    ``FigureCanvasSVG.print_svg`` does, with the cached text-to-path."""

    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = _CachedRendererAgg(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer

    def print_png(self, filename_or_obj, *, metadata=None, pil_kwargs=None,
                  **_print_options):
        """``FigureCanvasAgg.print_png``, but an opaque figure is written as RGB, not RGBA,
        at zlib level 3, not 6: the same pixels, half the encoding time, a smaller file."""
        from PIL import Image, PngImagePlugin

        FigureCanvasAgg.draw(self)
        rgba = np.asarray(self.buffer_rgba())
        image = Image.fromarray(rgba[..., :3] if (rgba[..., 3] == 255).all() else rgba)
        info = PngImagePlugin.PngInfo()
        for key, value in (metadata or {}).items():
            if value is not None:
                info.add_text(key, value)
        dpi = self.figure.dpi
        image.save(filename_or_obj, format="png", pnginfo=info, dpi=(dpi, dpi),
                   compress_level=3, **(pil_kwargs or {}))

    def print_svg(self, filename, *, bbox_inches_restore=None, metadata=None,
                  **_print_options):  # dpi, facecolor, ...: FigureCanvasSVG ignores them too
        with cbook.open_file_cm(filename, "w", encoding="utf-8") as fh:
            if not cbook.file_requires_unicode(fh):
                fh = codecs.getwriter("utf-8")(fh)
            dpi = self.figure.dpi
            self.figure.dpi = 72
            width, height = self.figure.get_size_inches()
            renderer = MixedModeRenderer(
                self.figure, width, height, dpi,
                _CachedRendererSVG(width * 72, height * 72, fh, image_dpi=dpi,
                                   metadata=metadata),
                bbox_inches_restore=bbox_inches_restore)
            self.figure.draw(renderer)
            renderer.finalize()


# ----------------------------------------------------------------------------- shares chart

def _ordered_rows(part: pd.DataFrame) -> list[dict]:
    """The rows of ``part`` as records, by year then scenario (a few rows: records are
    cheaper to read than a frame's columns)."""
    records = part.to_dict("records")
    records.sort(key=lambda r: (r["year"], scenario_rank(r["scenario"])))  # stable
    return records


def _bars(ax, ys: Sequence[float], widths: Sequence[float], *, height: float,
          left: Sequence[float] | float = 0.0, facecolor: str,
          edgecolor: str | None = None, **style) -> None:
    """Horizontal bars centred on ``ys``, as ``ax.barh`` draws them, added without updating
    the data limits (most of the cost of ``barh``): every chart sets its limits itself.
    Sizes are rounded and styles given as ``barh`` does (it adds sizes to the first bar's
    position and takes it away again; colours are RGBA rows), so the files stay byte for
    byte those of ``barh``."""
    lefts = np.broadcast_to(np.asarray(left), (len(ys),))
    if not len(ys):
        return
    h = (ys[0] + height) - ys[0]
    face = to_rgba_array(facecolor)
    style["facecolor"] = face[0] if len(face) else "none"
    if edgecolor is not None:
        edge = to_rgba_array(edgecolor)
        style["edgecolor"] = edge[0] if len(edge) else "none"
    if "hatch" in style:  # a numpy string, as barh passes it (the SVG pattern id hashes it)
        style["hatch"] = np.atleast_1d(style["hatch"])[0]
    for y, w, x0 in zip(ys, widths, lefts, strict=True):
        ax.add_artist(Rectangle((x0, y - height / 2), (lefts[0] + w) - lefts[0], h,
                                label="_nolegend_", **style))


def _title_lines(label: str, what: str, manifest: Mapping) -> str:
    title = f"{label}: {what}"
    return f"{SYNTHETIC_TITLE}: {title}" if is_synthetic(manifest) else title


def shares_figure(part: pd.DataFrame, *, manifest: Mapping, dpi: int = 150) -> Figure:
    """Stacked bars of the share of screened sites per level, one bar per scenario x year.

    Parameters
    ----------
    part : rows of :func:`sitescreen.aggregate.shares` for one hazard or composite.
    manifest : the run manifest (``run_id``, ``data_origin``).

    Returns
    -------
    A Matplotlib :class:`~matplotlib.figure.Figure` on an Agg canvas. Percentages are of the
    sites screened (``sites_screened``); sites with no data and unresolved sites are drawn
    apart, as counts, in the right-hand panel. The medium-and-above share has a panel of its
    own beside the bars (0-100 %): a dark bar of the share with the range
    (``medium_plus_pct_low`` to ``_high``) as a whisker, drawn only when the range is not a
    single value, and the figures written after it.
    """
    records = _ordered_rows(part)
    if not records:
        raise ValueError("shares_figure needs at least one row of the shares table")
    label = str(records[0]["hazard_label"])
    synthetic = is_synthetic(manifest)
    years = list(dict.fromkeys(r["year"] for r in records))
    # y position: one slot per bar plus a half-slot gap between years, top to bottom.
    ys = np.array([i + 0.5 * years.index(r["year"]) for i, r in enumerate(records)],
                  dtype=float)
    n = len(records)

    top_in = 1.0 + (0.3 if synthetic else 0.0)
    bottom_in = 1.05
    plot_h = 0.36 * (ys[-1] + 1.0)
    width_in, height_in = 10.0, top_in + plot_h + bottom_in
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    _Canvas(fig)
    bottom = bottom_in / height_in
    h = plot_h / height_in
    ax = fig.add_axes((1.55 / width_in, bottom, 4.3 / width_in, h))
    mp_ax = fig.add_axes((6.3 / width_in, bottom, 1.0 / width_in, h), sharey=ax)
    side = fig.add_axes((8.6 / width_in, bottom, 1.0 / width_in, h), sharey=ax)

    left = np.zeros(n)
    for lvl in _LEVELS:
        pct = np.array([_num(r[f"pct_level_{lvl}"]) for r in records])
        pct[np.isnan(pct)] = 0.0
        _bars(ax, ys, pct, left=left, height=0.72, facecolor=LEVEL_COLOURS[lvl],
              edgecolor="white", linewidth=0.6, zorder=2)
        for y, x0, w in zip(ys, left, pct, strict=True):
            if w >= 6.0:  # narrower segments cannot hold a label legibly
                ax.text(x0 + w / 2, y, f"{w:.0f}%", ha="center", va="center", fontsize=7.5,
                        color=TEXT_ON[lvl], zorder=3)
        left = left + pct

    yaxis = mp_ax.get_yaxis_transform()
    mp_ax.set_title("medium+ % (range)", fontsize=8.5, loc="left", fontweight="bold")
    mp_bars: list[tuple[float, float]] = []
    for y, row in zip(ys, records, strict=True):
        screened = int(row["sites_screened"])
        if screened == 0:
            _bars(ax, [y], [100.0], height=0.72, facecolor="none", edgecolor=NO_DATA_COLOUR,
                  hatch="///", linewidth=0.6, zorder=2)
            ax.text(50, y, "no screened sites", ha="center", va="center", fontsize=8,
                    color="#555555", zorder=3)
            mp_ax.text(1.06, y, "-", transform=yaxis, ha="left", va="center", fontsize=8.5)
            continue
        mp, lo, hi = _num(row["medium_plus_pct"]), _num(row["medium_plus_pct_low"]), \
            _num(row["medium_plus_pct_high"])
        text = f"{pct_text(mp)} %"  # as the tables print it: 100 and 0 only when exact
        mp_bars.append((y, mp))
        rng = range_text(lo, hi)
        if rng:
            mp_ax.errorbar([mp], [y], xerr=[[max(mp - lo, 0.0)], [max(hi - mp, 0.0)]],
                           fmt="none", ecolor="black", elinewidth=1.3, capsize=3.5,
                           capthick=1.3, zorder=4)
            text += f" ({rng})"
        if approximate_pathways(row):
            text += " \u2020"
        mp_ax.text(1.06, y, text, transform=yaxis, ha="left", va="center", fontsize=8.5)
    if mp_bars:  # the share as a bar of its own, so the range reads on a 0-100 scale beside it
        mp_y, mp_w = zip(*mp_bars, strict=True)
        _bars(mp_ax, mp_y, mp_w, height=0.5, facecolor=_MEDIUM_PLUS_COLOUR, zorder=2)
    mp_ax.set_xlim(0, 100)
    mp_ax.set_xticks([0, 50, 100], ["0", "50", "100%"])
    mp_ax.tick_params(axis="y", left=False, labelleft=False)
    mp_ax.grid(axis="x", color="#e0e0e0", linewidth=0.5, zorder=0)
    for spine in ("top", "right"):
        mp_ax.spines[spine].set_visible(False)

    ticks = [f"{int(r['year'])}  {scenario_title(r['scenario'])}" for r in records]
    ax.set_yticks(ys, ticks)
    ax.set_ylim(ys[-1] + 0.6, ys[0] - 0.6)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    ax.tick_params(axis="y", length=0)
    ax.set_title("% of screened sites at each risk level", fontsize=9, loc="left")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.5, zorder=0)

    total, no_data, unresolved = (np.array([int(r[k]) for r in records], dtype=np.int64)
                                  for k in ("sites_total", "sites_no_data", "sites_unresolved"))
    _bars(side, ys, no_data, height=0.72, facecolor=NO_DATA_COLOUR, zorder=2)
    _bars(side, ys, unresolved, left=no_data, height=0.72, facecolor=UNRESOLVED_COLOUR,
          edgecolor="#737373", hatch="////", linewidth=0.5, zorder=2)
    xmax = max(int(total.max()), 1)
    side.set_xlim(0, xmax)
    for y, nd, un in zip(ys, no_data, unresolved, strict=True):
        side.text(min(nd + un, xmax) + 0.03 * xmax, y, f"{nd + un}", ha="left", va="center",
                  fontsize=8)
    side.set_title(f"not screened\n(of {xmax} sites)", fontsize=8, loc="left")
    side.tick_params(axis="y", left=False, labelleft=False)
    side.set_xticks([0, xmax])
    for spine in ("top", "right"):
        side.spines[spine].set_visible(False)

    fig.text(0.012, 1 - 0.32 / height_in, _title_lines(label, "share of sites by risk level",
                                                         manifest),
             fontsize=12, fontweight="bold", va="top",
             color=SYNTHETIC_RED if synthetic else "black")
    sub = (f"Run {manifest.get('run_id', '')}; {int(total.max())} sites; threshold set "
           f"{records[0]['threshold_set']}")
    fig.text(0.012, 1 - 0.62 / height_in, sub, fontsize=8.5, va="top", color="#444444")
    if synthetic:
        fig.text(0.012, 1 - 0.88 / height_in,
                 "Illustrative numbers generated for a demonstration, NOT hazard data: "
                 "do not report them.", fontsize=8.5, va="top", color=SYNTHETIC_RED,
                 fontweight="bold")
        ax.text(50, (ys[0] + ys[-1]) / 2, SYNTHETIC_TITLE, ha="center", va="center",
                rotation=12, fontsize=26, color=SYNTHETIC_RED, alpha=0.16,
                fontweight="bold", zorder=5)

    handles = [Patch(facecolor=LEVEL_COLOURS[lvl], label=f"{lvl} {RiskLevel(lvl).label}")
               for lvl in _LEVELS]
    handles += [Patch(facecolor=NO_DATA_COLOUR, label="no data"),
                Patch(facecolor=UNRESOLVED_COLOUR, edgecolor="#737373", hatch="////",
                      label="unresolved location"),
                Patch(facecolor=_MEDIUM_PLUS_COLOUR, label="medium+ (levels 3-5)"),
                Line2D([], [], color="black", marker="|", markersize=8, linewidth=1.3,
                       label="its range (model spread)")]
    fig.legend(handles=handles, loc="lower left", ncol=5, frameon=False, fontsize=8,
               bbox_to_anchor=(1.45 / width_in, 0.3 / height_in))
    note = ("Percentages of screened sites (located, with data); medium+ = levels 3-5."
            + ("  \u2020 dataset pathway approximates the scenario (see Methods)."
               if any(approximate_pathways(r) for r in records) else ""))
    fig.text(0.012, 0.08 / height_in, note, fontsize=7, color="#555555", va="bottom")
    fig.set_label(_title_lines(label, "share of sites by risk level", manifest))
    return fig


# ----------------------------------------------------------------------------- site maps

@lru_cache(maxsize=1)
def _country_path() -> MplPath:
    """All country outlines as one compound path (exteriors CCW, holes CW: nonzero fill)."""
    text = resources.files("sitescreen").joinpath(
        "outputs/naturalearth_110m_countries.geojson").read_text("utf-8")
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in json.loads(text)["features"]])
    polys = shapely.get_parts(shapely.orient_polygons(geoms))
    paths = []
    for poly in polys:
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            codes = np.full(len(xy), MplPath.LINETO, dtype=MplPath.code_type)
            codes[0], codes[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            paths.append(MplPath(xy, codes))
    return MplPath.make_compound_path(*paths)


def _deg(value: float, pos_hemi: str, neg_hemi: str) -> str:
    hemi = pos_hemi if value > 0 else neg_hemi if value < 0 else ""
    return f"{abs(value):g}\u00b0{hemi}"


def _nice_step(span: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 20, 30, 60):
        if span / step <= 6:
            return step
    return 90.0


#: Maps of at most this many located sites label them (name, else id).
MAX_MAP_LABELS = 50


def _site_label(site_id: object, name: object) -> str:
    """A short map label: the name, else the id (also when the name has characters the
    map font has no glyphs for, such as CJK)."""
    text = str(name).strip() if isinstance(name, str) and name.strip() else str(site_id)
    if any(ord(c) > 0x2FFF for c in text):
        text = str(site_id)
    return textwrap.shorten(text, 24, placeholder="\u2026")


def _label_sites(ax, pts: pd.DataFrame, dpi: int) -> int:
    """Label the sites in ``pts`` (worst level first) where a label fits without covering
    another label or site; returns how many were left out."""
    ax.apply_aspect()  # the final data limits, so display positions are right
    fontsize = 6.5
    scale = dpi / 72.0
    h = fontsize * 1.25 * scale
    xy = ax.transData.transform(pts[["lon", "lat"]].to_numpy(dtype=float))
    r = 4.0 * scale
    taken = [(x - r, y - r, x + r, y + r) for x, y in xy]  # the markers themselves
    frame = ax.bbox.extents
    omitted = 0
    order = np.argsort(-pts["level"].astype(int).to_numpy(), kind="stable")
    for i in order:
        label = str(pts["label"].iloc[i])
        w = (0.56 * fontsize * len(label) + 2) * scale
        x, y = xy[i]
        for dx, dy, ha, va in ((6, 3, "left", "bottom"), (6, -3, "left", "top"),
                               (-6, 3, "right", "bottom"), (-6, -3, "right", "top")):
            x0 = x + dx * scale if ha == "left" else x + dx * scale - w
            y0 = y + dy * scale if va == "bottom" else y + dy * scale - h
            box = (x0, y0, x0 + w, y0 + h)
            inside = box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] \
                and box[3] <= frame[3]
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3]
                                  and b[1] < box[3] for j, b in enumerate(taken)
                                  if j != i or len(b) == 5):
                ax.annotate(label, (pts["lon"].iloc[i], pts["lat"].iloc[i]), xytext=(dx, dy),
                            textcoords="offset points", ha=ha, va=va, fontsize=fontsize,
                            color="#222222", zorder=12,
                            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                                  "edgecolor": "none", "alpha": 0.75})
                taken.append((*box, 1))  # 5-tuple: a label, which its own site must avoid too
                break
        else:
            omitted += 1
    return omitted


#: Above this many located sites a map draws, of the sites that fall in one cell of a third
#: of a marker's width, the one with the highest level (the one drawn on top anyway): a map
#: of a million sites then draws some tens of thousands of markers and looks the same.
MAX_MAP_POINTS = 20_000
_MARKER_AREA = 38  # points^2, the markers of levels 1-5
_CELL_IN = math.sqrt(_MARKER_AREA) / 72 / 3  # inches


def _map_points(hazard: str, scenario: str, year: int, sites: pd.DataFrame,
                table: SiteResults | pd.DataFrame) -> tuple[str, str, pd.DataFrame, int]:
    """(hazard label, dataset pathways, the located sites with ``site_id``, ``lon``,
    ``lat``, ``level`` in input order, how many sites have no location) of one layer."""
    if isinstance(table, SiteResults):
        i = table.layer_index(hazard, scenario, year)
        if i is None:
            raise ValueError(f"no results for {hazard}/{scenario}/{year} to map")
        info = table.layers[i]
        lon = pd.to_numeric(sites["lon"], errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(sites["lat"], errors="coerce").to_numpy(dtype=float)
        ok = ~(np.isnan(lon) | np.isnan(lat))
        located = pd.DataFrame({"lon": lon[ok], "lat": lat[ok],
                                "level": table.level[i][ok].astype(np.int64)})
        located.insert(0, "site_id", np.flatnonzero(ok))  # positions, for the labels
        return (info.hazard_label, f"{info.pathway} ({info.period})", located,
                int((~ok).sum()))
    rows = table[(table["hazard"] == hazard) & (table["scenario"] == scenario)
                 & (table["year"].astype(int) == int(year))]
    if rows.empty:
        raise ValueError(f"no results for {hazard}/{scenario}/{year} to map")
    pos = sites[["site_id", "lon", "lat"]].copy()
    pos["lon"] = pd.to_numeric(pos["lon"], errors="coerce")
    pos["lat"] = pd.to_numeric(pos["lat"], errors="coerce")
    merged = rows[["site_id", "level"]].merge(pos, on="site_id", how="left")
    located = merged.dropna(subset=["lon", "lat"])
    pathways = "; ".join(f"{r.pathway} ({r.period})" for r in
                         rows[["pathway", "period"]].drop_duplicates().itertuples())
    return (str(rows["hazard_label"].iloc[0]), pathways, located,
            len(merged) - len(located))


def _with_labels(pts: pd.DataFrame, sites: pd.DataFrame, by_position: bool) -> pd.DataFrame:
    """``pts`` with the ``label`` of each site (only for the few sites a map labels)."""
    ids = sites["site_id"].to_numpy()
    names = sites["name"].to_numpy() if "name" in sites else ids
    if by_position:
        at = pts["site_id"].to_numpy(dtype=np.int64)
    else:
        at = pd.Index(ids).get_indexer(pts["site_id"])
    return pts.assign(label=[_site_label(ids[j], names[j]) if j >= 0 else str(pts_id)
                             for j, pts_id in zip(at, pts["site_id"], strict=True)])


def _thinned(located: pd.DataFrame, extent: tuple[float, float, float, float],
             size_in: tuple[float, float]) -> pd.DataFrame:
    """Of the sites in each map cell of :data:`_CELL_IN`, the one with the highest level
    (the first of them on ties), in input order."""
    x0, x1, y0, y1 = extent
    nx = max(1, int(size_in[0] / _CELL_IN))
    ny = max(1, int(size_in[1] / _CELL_IN))
    lon, lat = located["lon"].to_numpy(float), located["lat"].to_numpy(float)
    cx = np.clip(((lon - x0) / max(x1 - x0, 1e-9) * nx).astype(np.int64), 0, nx - 1)
    cy = np.clip(((lat - y0) / max(y1 - y0, 1e-9) * ny).astype(np.int64), 0, ny - 1)
    cell = cy * nx + cx
    order = np.lexsort((np.arange(len(cell)), -located["level"].to_numpy(), cell))
    first = np.r_[True, cell[order][1:] != cell[order][:-1]] if len(order) else order
    return located.iloc[np.sort(order[first])]


def map_figure(hazard: str, scenario: str, year: int, *, sites: pd.DataFrame,
               table: SiteResults | pd.DataFrame, manifest: Mapping, dpi: int = 150) -> Figure:
    """A static map of the sites coloured by their level for one hazard, scenario and year.

    Sites are drawn at their WGS 84 coordinates on a plate carree grid whose aspect is
    corrected for the mean latitude (1 / cos(lat)); the worst levels are drawn last so they
    stay visible where sites overlap. Sites without data are hollow grey circles; unresolved
    sites cannot be placed and are counted in the subtitle. ``table`` is the run's results
    (aligned with ``sites``) or the long results table. Above :data:`MAX_MAP_POINTS` located
    sites, each small cell of the map draws its worst site (the legend counts every site).
    """
    label, pathways, located, unresolved = _map_points(hazard, scenario, year, sites, table)
    synthetic = is_synthetic(manifest)

    if located.empty:
        x0, x1, y0, y1 = -180.0, 180.0, -60.0, 80.0
    else:
        lon, lat = located["lon"].to_numpy(), located["lat"].to_numpy()
        span = max(np.ptp(lon), np.ptp(lat), 1.0)
        pad = max(1.5, 0.15 * span)
        x0, x1 = max(lon.min() - pad, -180.0), min(lon.max() + pad, 180.0)
        y0, y1 = max(lat.min() - pad, -85.0), min(lat.max() + pad, 85.0)
    aspect = 1.0 / max(math.cos(math.radians((y0 + y1) / 2)), 0.2)
    map_w = 6.0
    map_h = float(np.clip(map_w * (y1 - y0) * aspect / (x1 - x0), 2.5, 7.5))
    if map_h in (2.5, 7.5):  # extent too wide or too tall for the box: widen the other way
        if map_h == 2.5:
            mid, half = (y0 + y1) / 2, map_h * (x1 - x0) / (map_w * aspect) / 2
            y0, y1 = mid - half, mid + half
        else:
            mid, half = (x0 + x1) / 2, map_w * (y1 - y0) * aspect / map_h / 2
            x0, x1 = mid - half, mid + half
    top_in = 0.85 + (0.25 if synthetic else 0.0)
    bottom_in = 0.6
    width_in, height_in = map_w + 2.6, top_in + map_h + bottom_in
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    _Canvas(fig)
    ax = fig.add_axes((0.55 / width_in, bottom_in / height_in, map_w / width_in,
                       map_h / height_in))
    ax.set_facecolor("#e6f0f7")
    # add_artist, not add_patch: the world outline must not widen the data limits (and
    # computing them over 10,000 vertices per map is the slowest step of a map).
    land = PathPatch(_country_path(), facecolor="#f4f4f1", edgecolor="#9e9e9e",
                     linewidth=0.5, zorder=1, transform=ax.transData)
    ax.add_artist(land)
    land.set_clip_path(ax.patch)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(aspect, adjustable="datalim")

    levels = located["level"].to_numpy().astype(int)
    counts = {lvl: int((levels == lvl).sum()) for lvl in (0, *_LEVELS)}
    drawn = located if len(located) <= MAX_MAP_POINTS else \
        _thinned(located, (x0, x1, y0, y1), (map_w, map_h))
    ordered = drawn.sort_values("level", kind="stable")
    for lvl in (0, *_LEVELS):
        pts = ordered[ordered["level"].astype(int) == lvl]
        if pts.empty:
            continue
        if lvl == 0:
            ax.scatter(pts["lon"], pts["lat"], s=30, facecolors="none",
                       edgecolors="#7a7a7a", linewidths=0.9, zorder=3)
        else:
            ax.scatter(pts["lon"], pts["lat"], s=_MARKER_AREA, c=LEVEL_COLOURS[lvl],
                       edgecolors="#333333", linewidths=0.5, zorder=3 + lvl)

    omitted = _label_sites(ax, _with_labels(ordered, sites, isinstance(table, SiteResults)),
                           dpi) if 0 < len(located) <= MAX_MAP_LABELS else 0
    step = _nice_step(max(x1 - x0, y1 - y0))
    xt = np.arange(math.ceil(x0 / step) * step, x1 + 1e-9, step)
    yt = np.arange(math.ceil(y0 / step) * step, y1 + 1e-9, step)
    ax.set_xticks(xt, [_deg(v, "E", "W") for v in xt])
    ax.set_yticks(yt, [_deg(v, "N", "S") for v in yt])
    ax.tick_params(labelsize=7.5)
    ax.grid(color="white", linewidth=0.5, zorder=2)

    handles = [Line2D([], [], linestyle="none", marker="o", markersize=7,
                      markerfacecolor=LEVEL_COLOURS[lvl], markeredgecolor="#333333",
                      label=f"{lvl} {RiskLevel(lvl).label} ({counts[lvl]})")
               for lvl in reversed(_LEVELS)]
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7,
                          markerfacecolor="none", markeredgecolor="#7a7a7a",
                          label=f"no data ({counts[0]})"))
    fig.legend(handles=handles, loc="upper left", frameon=False, fontsize=8,
               title="risk level (sites)", title_fontsize=8,
               bbox_to_anchor=((0.75 + map_w) / width_in, 1 - top_in / height_in))

    title = _title_lines(label, f"{scenario_title(scenario)} {int(year)}", manifest)
    fig.text(0.012, 1 - 0.3 / height_in, title, fontsize=12, fontweight="bold", va="top",
             color=SYNTHETIC_RED if synthetic else "black")
    sub = (f"Dataset pathway: {pathways}.  {len(located)} sites shown"
           + (f" ({len(drawn)} markers: where sites crowd, the highest level)"
              if len(drawn) < len(located) else "")
           + (f"; {unresolved} unresolved site{'s' if unresolved != 1 else ''} not shown"
              if unresolved else "") + ".")
    fig.text(0.012, 1 - 0.6 / height_in, textwrap.shorten(sub, 150, placeholder=" ..."),
             fontsize=8, va="top", color="#444444")
    if synthetic:
        fig.text(0.012, 1 - 0.83 / height_in,
                 "Illustrative numbers, NOT hazard data: do not report them.", fontsize=8.5,
                 va="top", color=SYNTHETIC_RED, fontweight="bold")
        ax.text(0.5, 0.5, SYNTHETIC_TITLE, transform=ax.transAxes, ha="center", va="center",
                rotation=20, fontsize=24, color=SYNTHETIC_RED, alpha=0.16, fontweight="bold",
                zorder=10)
    fig.text(0.012, 0.1 / height_in,
             f"{BOUNDARY_CREDIT} Run {manifest.get('run_id', '')}."
             + (f" {omitted} site labels left out where sites crowd." if omitted else ""),
             fontsize=6.5, color="#555555", va="bottom")
    if located.empty:
        ax.text(0.5, 0.5, "no located sites", transform=ax.transAxes, ha="center")
    fig.set_label(title)
    return fig


# ----------------------------------------------------------------------------- output

def figure_bytes(fig: Figure, fmt: str, *, title: str | None = None) -> bytes:
    """Encode a figure as PNG or SVG with no date in it, so reruns are byte-identical.

    The chart title goes into the file's metadata (PNG ``Title`` text chunk, SVG Dublin Core
    title) so a file says what it shows even where it is viewed alone.
    """
    title = title if title is not None else fig.get_label()
    buf = io.BytesIO()
    with _LOCK, matplotlib.rc_context(_RC):
        if fmt == "png":
            meta = {"Software": "sitescreen (matplotlib)"}
            if title:
                meta["Title"] = title
            fig.savefig(buf, format="png", metadata=meta)
        elif fmt == "svg":
            meta = {"Date": None, "Creator": "sitescreen (matplotlib)"}
            if title:
                meta["Title"] = title
            fig.savefig(buf, format="svg", metadata=meta)
        else:
            raise ValueError(f"unknown chart format {fmt!r}; expected 'png' or 'svg'")
    return buf.getvalue()


def _maps(table: SiteResults | pd.DataFrame,
          maps: Sequence[tuple[str, str, int]] | None) -> Sequence[tuple[str, str, int]]:
    if maps is not None:
        return maps
    return map_layers(table.layer_table() if isinstance(table, SiteResults) else table)


def chart_names(shares: pd.DataFrame, table: SiteResults | pd.DataFrame, *,
                formats: Iterable[str] = ("png", "svg"),
                maps: Sequence[tuple[str, str, int]] | None = None) -> list[str]:
    """The file names :func:`render_charts` gives for the same arguments, in its order,
    without drawing anything."""
    formats = tuple(formats)
    return [*(shares_chart_name(h, f) for h in hazard_order(shares) for f in formats),
            *(map_chart_name(*m) for m in _maps(table, maps))]


def render_charts(shares: pd.DataFrame, sites: pd.DataFrame,
                  table: SiteResults | pd.DataFrame, *,
                  manifest: Mapping, formats: Iterable[str] = ("png", "svg"),
                  maps: Sequence[tuple[str, str, int]] | None = None,
                  dpi: int = 150) -> dict[str, bytes]:
    """Every chart of a run, as ``{file name: bytes}`` ready for ``outputs.write_run``.

    Parameters
    ----------
    shares : :func:`sitescreen.aggregate.shares` output (all hazards and composites).
    sites : the located sites (``site_id``, ``lon``, ``lat``; NaN for unresolved).
    table : the run's per-site results aligned with ``sites``, or the long results table
        (for the maps).
    manifest : the run manifest (``run_id``, ``data_origin``).
    formats : formats of the shares charts ("png", "svg"). Maps are PNG only.
    maps : (hazard, scenario, year) maps to draw; None: :func:`map_layers` defaults.

    Returns
    -------
    ``charts/<hazard>_shares.<fmt>`` for every hazard and composite, and
    ``charts/map_<hazard>_<scenario>_<year>.png`` for every map.
    """
    formats = tuple(formats)
    out: dict[str, bytes] = {}
    with _LOCK, matplotlib.rc_context(_RC):
        figures: list[tuple[list[str], Figure]] = []
        for hazard in hazard_order(shares):
            fig = shares_figure(shares[shares["hazard"] == hazard], manifest=manifest, dpi=dpi)
            figures.append(([shares_chart_name(hazard, f) for f in formats], fig))
        for hazard, scenario, year in _maps(table, maps):
            fig = map_figure(hazard, scenario, year, sites=sites, table=table,
                             manifest=manifest, dpi=dpi)
            figures.append(([map_chart_name(hazard, scenario, year)], fig))
    for names, fig in figures:
        for name in names:
            out[name] = figure_bytes(fig, name.rsplit(".", 1)[1])
    log.debug("rendered %d chart files", len(out))
    return out

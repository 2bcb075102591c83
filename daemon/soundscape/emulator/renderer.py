"""The emulator's picture: a machine-readable frame counter and a human-readable overlay.

Pure: no I/O, no clock. A frame is built from three layers:

* a **barcode strip** at the bottom carrying the frame counter (24 bits) and a
  checksum (8 bits) in big black/white cells, so the number survives VP8 and NDI
  and :func:`decode_counter` can read it back from the luma plane;
* a **text layer** listing the prompts and the live parameters, drawn with Pillow
  only when the parameters change (:class:`Renderer` caches it);
* a **moving colour field** (the chroma planes scroll with time, faster with more
  ``noise_scale``), so a person sees at a glance that the stream is live.

Layout is proportional to the frame size, so a scaled copy of a frame still decodes.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

COUNTER_BITS = 24
CHECK_BITS = 8
COUNTER_MODULO = 1 << COUNTER_BITS
# Guards: a white and a black cell at each end give the decoder its own contrast
# reference, so it needs no fixed threshold (NDI or a colour-range change shifts levels).
_START = (1, 0)
_END = (0, 1)
CELLS = len(_START) + COUNTER_BITS + CHECK_BITS + len(_END)

# Studio-range luma, what a VP8/NDI chain carries without clipping.
Y_BLACK = 16
Y_WHITE = 235

# Strip geometry as fractions of the frame (scale-invariant).
_STRIP_X0, _STRIP_X1 = 0.02, 0.98
_STRIP_Y0, _STRIP_Y1 = 0.90, 0.98
_MIN_CONTRAST = 60.0
_MIN_MARGIN = 0.25  # each cell must sit this far (in contrast units) from the threshold

MIN_WIDTH = 64
MIN_HEIGHT = 48


# --------------------------------------------------------------------------- barcode


def _checksum(counter: int) -> int:
    return zlib.crc32(counter.to_bytes(3, "big")) & ((1 << CHECK_BITS) - 1)


def barcode_bits(counter: int) -> list[int]:
    """The cells of the strip, left to right: guards, counter (MSB first), checksum."""
    counter %= COUNTER_MODULO
    word = (counter << CHECK_BITS) | _checksum(counter)
    total = COUNTER_BITS + CHECK_BITS
    data = [(word >> (total - 1 - i)) & 1 for i in range(total)]
    return [*_START, *data, *_END]


def _cell_edges(width: int) -> np.ndarray:
    x0, x1 = _STRIP_X0 * width, _STRIP_X1 * width
    return np.round(np.linspace(x0, x1, CELLS + 1)).astype(int)


def _strip_rows(height: int) -> tuple[int, int]:
    return round(_STRIP_Y0 * height), round(_STRIP_Y1 * height)


def stamp_barcode(luma: np.ndarray, counter: int) -> None:
    """Write the counter's strip into a luma plane, in place."""
    height, width = luma.shape
    edges = _cell_edges(width)
    y0, y1 = _strip_rows(height)
    levels = np.where(np.array(barcode_bits(counter)) == 1, Y_WHITE, Y_BLACK).astype(np.uint8)
    row = np.repeat(levels, np.diff(edges))
    luma[y0:y1, edges[0] : edges[-1]] = row


def decode_counter(luma: np.ndarray) -> int | None:
    """Read the frame counter from a luma plane (H x W), or None if unreadable.

    Samples the middle half of every cell, thresholds halfway between the white and
    black guard cells, and accepts the number only if the guards, the checksum and
    the distance of every cell from the threshold all agree.
    """
    if luma.ndim != 2:
        return None
    height, width = luma.shape
    if width < MIN_WIDTH // 2 or height < MIN_HEIGHT // 2:
        return None
    edges = _cell_edges(width)
    y0, y1 = _strip_rows(height)
    qy = max(1, (y1 - y0) // 4)
    band = luma[y0 + qy : y1 - qy].astype(np.float32)
    if band.size == 0:
        return None
    values = np.empty(CELLS, dtype=np.float32)
    for i in range(CELLS):
        a, b = edges[i], edges[i + 1]
        q = max(0, (b - a) // 4)
        cell = band[:, a + q : b - q] if b - q > a + q else band[:, a:b]
        values[i] = cell.mean() if cell.size else 0.0
    white = (values[0] + values[-1]) / 2
    black = (values[1] + values[-2]) / 2
    contrast = white - black
    if contrast < _MIN_CONTRAST:
        return None
    threshold = (white + black) / 2
    if np.any(np.abs(values - threshold) < _MIN_MARGIN * contrast):
        return None
    bits = (values > threshold).astype(int).tolist()
    if tuple(bits[:2]) != _START or tuple(bits[-2:]) != _END:
        return None
    word = 0
    for bit in bits[2:-2]:
        word = (word << 1) | bit
    counter = word >> CHECK_BITS
    if word & ((1 << CHECK_BITS) - 1) != _checksum(counter):
        return None
    return counter


# --------------------------------------------------------------------------- text


def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.2f}"
    return "-" if value is None else repr(value)[:24]


def _prompt_items(value: Any) -> list[tuple[str, Any]]:
    """(text, weight) pairs from whatever a client sent; never raises."""
    if isinstance(value, str):
        return [(value, 1.0)]
    if not isinstance(value, list | tuple):
        return []
    items = []
    for item in value[:4]:
        if isinstance(item, Mapping):
            items.append((str(item.get("text", "?")), item.get("weight", 1.0)))
        else:
            items.append((str(item), 1.0))
    return items


def _lora_text(value: Any) -> str:
    if not isinstance(value, list | tuple) or not value:
        return "-"
    parts = []
    for item in value[:4]:
        if isinstance(item, Mapping):
            name = str(item.get("path", "?")).rsplit("/", 1)[-1].removesuffix(".safetensors")
            parts.append(f"{name[:16]}:{_fmt_number(item.get('scale'))}")
    return " ".join(parts) or "-"


def overlay_lines(info: Mapping[str, Any]) -> list[str]:
    """The text lines of the overlay, from the parameters and session facts.

    ``info`` holds ``parameters`` (merged session parameters) and optionally
    ``pipeline``, ``width``, ``height``, ``transition`` ({from, to, step, num_steps}),
    ``cache_resets`` and ``tempo_bpm``.
    """
    params = info.get("parameters") or {}
    width, height = info.get("width", 0), info.get("height", 0)
    lines = [f"SCOPE EMULATOR  {info.get('pipeline', '?')}  {width}x{height}"]
    transition = info.get("transition")
    prompts = _prompt_items(params.get("prompts"))
    if transition and transition.get("num_steps"):
        step, steps = transition.get("step", 0), transition["num_steps"]
        t = min(1.0, step / steps)
        lines.append(f"TRANSITION {step}/{steps} ({t:.0%})")
        for text, weight in _prompt_items(transition.get("from")):
            w = weight * (1 - t) if isinstance(weight, int | float) else weight
            lines.append(f"  - {text}  x{_fmt_number(w)}")
        for text, weight in _prompt_items(transition.get("to")):
            w = weight * t if isinstance(weight, int | float) else weight
            lines.append(f"  + {text}  x{_fmt_number(w)}")
    else:
        lines.extend(f"> {text}  x{_fmt_number(weight)}" for text, weight in prompts)
        if not prompts:
            lines.append("> (no prompt)")
    lines.append(
        f"noise {_fmt_number(params.get('noise_scale'))}"
        f"  vace {_fmt_number(params.get('vace_context_scale'))}"
        f"  kv_bias {_fmt_number(params.get('kv_cache_attention_bias'))}"
    )
    steps = params.get("denoising_step_list")
    steps_text = ",".join(str(s) for s in steps) if isinstance(steps, list | tuple) else "-"
    lines.append(f"steps [{steps_text}]  lora {_lora_text(params.get('lora_scales'))}")
    status = "PAUSED" if params.get("paused") else "playing"
    extra = f"  cache resets {info.get('cache_resets', 0)}"
    if info.get("tempo_bpm"):
        extra += f"  tempo {info['tempo_bpm']:.1f}"
    lines.append(status + extra)
    return lines


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=8)
def _digit_glyphs(size: int) -> tuple[dict[str, np.ndarray], int, int]:
    """Alpha masks (0..1) of '#0123456789' at one size, all the same cell width."""
    font = _font(size)
    chars = "#0123456789"
    cell_w = max(math.ceil(font.getlength(c)) for c in chars)
    cell_h = int(size * 1.25)
    glyphs = {}
    for c in chars:
        img = Image.new("L", (cell_w, cell_h), 0)
        ImageDraw.Draw(img).text((0, 0), c, fill=255, font=font)
        glyphs[c] = np.asarray(img, dtype=np.float32) / 255.0
    return glyphs, cell_w, cell_h


# --------------------------------------------------------------------------- frames


def _even(n: int) -> int:
    return max(2, n - n % 2)


def frame_size(width: Any, height: Any) -> tuple[int, int]:
    """A drawable yuv420p size from requested dimensions (even, not too small)."""
    w = int(width) if isinstance(width, int | float) and width > 0 else 576
    h = int(height) if isinstance(height, int | float) and height > 0 else 320
    return _even(max(MIN_WIDTH, min(w, 4096))), _even(max(MIN_HEIGHT, min(h, 4096)))


@dataclass
class _Layout:
    font_size: int
    line_h: int
    margin: int
    counter_y: int
    counter_x: int
    text_y: int


def _layout(width: int, height: int) -> _Layout:
    font_size = max(8, height // 22)
    line_h = int(font_size * 1.3)
    margin = max(2, width // 60)
    big = font_size * 2
    return _Layout(
        font_size=font_size,
        line_h=line_h,
        margin=margin,
        counter_y=margin,
        counter_x=margin,
        text_y=margin + int(big * 1.3),
    )


class Renderer:
    """Draws frames of one size; caches everything that does not change per frame.

    ``set_overlay(info)`` redraws the text layer (call it when parameters change);
    ``frame(counter, t)`` stamps the counter and barcode and returns a yuv420p frame.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = frame_size(width, height)
        w, h = self.width, self.height
        self._layout = _layout(w, h)
        x = np.linspace(0.0, 1.0, w, dtype=np.float32)
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        # Background luma: a soft diagonal gradient, dark enough for white text.
        self._bg_y = (40 + 50 * (0.6 * x[None, :] + 0.4 * y)).astype(np.float32)
        # Chroma: one full hue turn across twice the width, so a scroll loops seamlessly.
        cw, ch = w // 2, h // 2
        phase = np.linspace(0.0, 4 * math.pi, 2 * cw, endpoint=False, dtype=np.float32)
        self._hue_u = np.cos(phase)
        self._hue_v = np.sin(phase)
        self._cw, self._ch = cw, ch
        self._chroma_amp = 40.0
        self._base_y = self._bg_y.astype(np.uint8)
        self._chroma_u = np.full((ch, 2 * cw), 128, np.uint8)
        self._chroma_v = np.full((ch, 2 * cw), 128, np.uint8)
        self._saturation = -1.0
        self.set_overlay({})

    def set_overlay(self, info: Mapping[str, Any], saturation: float = 0.5) -> None:
        """Redraw the cached text layer and colour field from ``info`` (see overlay_lines)."""
        lay = self._layout
        lines = overlay_lines({"width": self.width, "height": self.height, **info})
        limit = _strip_rows(self.height)[0] - lay.line_h
        fitting = (limit - lay.text_y) // lay.line_h + 1
        lines = lines[: max(0, fitting)]
        # Only the text block is drawn and blended: the rest is the cached background.
        top = lay.counter_y
        bottom = min(self.height, lay.text_y + len(lines) * lay.line_h + lay.margin // 2)
        img = Image.new("L", (self.width, bottom - top), 0)
        draw = ImageDraw.Draw(img)
        font = _font(lay.font_size)
        for i, line in enumerate(lines):
            draw.text((lay.margin, lay.text_y - top + i * lay.line_h), line, fill=255, font=font)
        alpha = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
        # Dim the background under the text block so the text reads on any colour.
        block = self._bg_y[top:bottom] * 0.55
        base = self._bg_y.astype(np.uint8)
        base[top:bottom] = (block + (Y_WHITE - block) * alpha).astype(np.uint8)
        self._base_y = base
        self._set_saturation(saturation)

    def _set_saturation(self, saturation: float) -> None:
        saturation = max(0.0, min(1.0, float(saturation)))
        if saturation == self._saturation:
            return
        self._saturation = saturation
        amp = self._chroma_amp * (0.3 + 0.7 * saturation)
        row_u = 128 + amp * self._hue_u
        row_v = 128 + amp * self._hue_v
        self._chroma_u = np.broadcast_to(row_u, (self._ch, row_u.size)).astype(np.uint8)
        self._chroma_v = np.broadcast_to(row_v, (self._ch, row_v.size)).astype(np.uint8)

    def frame(self, counter: int, shift: float = 0.0) -> av.VideoFrame:
        """The frame for ``counter``; ``shift`` (0..1, wraps) scrolls the colour field."""
        return to_video_frame(self.buffer(counter, shift))

    def buffer(self, counter: int, shift: float = 0.0) -> np.ndarray:
        """The frame as a packed I420 array of shape (height * 3 / 2, width)."""
        w, h, cw, ch = self.width, self.height, self._cw, self._ch
        buf = np.empty((h * 3 // 2, w), np.uint8)
        luma = buf[:h]
        luma[:] = self._base_y
        self._stamp_counter(luma, counter)
        stamp_barcode(luma, counter)
        offset = int((shift % 1.0) * cw)
        u = self._chroma_u[:, offset : offset + cw]
        v = self._chroma_v[:, offset : offset + cw]
        chroma = buf[h:].reshape(-1)
        size = cw * ch
        chroma[:size].reshape(ch, cw)[:] = u
        chroma[size : 2 * size].reshape(ch, cw)[:] = v
        # Keep the barcode neutral grey so a colour conversion cannot tint it.
        sy0, sy1 = _strip_rows(h)
        chroma[:size].reshape(ch, cw)[sy0 // 2 : (sy1 + 1) // 2] = 128
        chroma[size : 2 * size].reshape(ch, cw)[sy0 // 2 : (sy1 + 1) // 2] = 128
        return buf

    def inset(self, buffer: np.ndarray, picture: av.VideoFrame) -> None:
        """Paste a quarter-size copy of ``picture`` (the client's video) top right, in place."""
        w, h = self.width, self.height
        tw, th = _even(w // 4), _even(h // 4)
        small = picture.reformat(width=tw, height=th, format="yuv420p").to_ndarray()
        x0 = _even(w - tw - self._layout.margin)
        y0 = _even(self._layout.margin)
        buffer[y0 : y0 + th, x0 : x0 + tw] = small[:th]
        cw, ch, tcw, tch = w // 2, h // 2, tw // 2, th // 2
        chroma = buffer[h:].reshape(-1)
        small_chroma = small[th:].reshape(-1)
        for plane in range(2):
            dst = chroma[plane * cw * ch : (plane + 1) * cw * ch].reshape(ch, cw)
            src = small_chroma[plane * tcw * tch : (plane + 1) * tcw * tch].reshape(tch, tcw)
            dst[y0 // 2 : y0 // 2 + tch, x0 // 2 : x0 // 2 + tcw] = src

    def _stamp_counter(self, luma: np.ndarray, counter: int) -> None:
        lay = self._layout
        glyphs, gw, gh = _digit_glyphs(lay.font_size * 2)
        x, y = lay.counter_x, lay.counter_y
        for c in f"#{counter % COUNTER_MODULO:07d}":
            if x + gw > luma.shape[1] or y + gh > luma.shape[0]:
                break
            alpha = glyphs[c]
            region = luma[y : y + gh, x : x + gw]
            region[:] = (region * (1.0 - alpha) + Y_WHITE * alpha).astype(np.uint8)
            x += gw


def to_video_frame(buffer: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame from a packed I420 array (copies, so the array can be reused)."""
    return av.VideoFrame.from_ndarray(buffer, format="yuv420p")


def render(counter: int, params: Mapping[str, Any], width: int, height: int) -> av.VideoFrame:
    """One frame from scratch (tests, one-offs); streams use a cached :class:`Renderer`."""
    renderer = Renderer(width, height)
    renderer.set_overlay({"parameters": dict(params)})
    return renderer.frame(counter)

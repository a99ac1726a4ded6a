"""Ingredient sprites (one distinct shape, colour and texture per noun) and compositing helpers.

A sprite is drawn once per (noun, size) into an RGB patch plus an alpha mask (float32), then
scaled, rotated, split or recoloured per frame by the motions in `motions.py`.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from vbert.data.synthcook.world import NOUNS

Patch = tuple[np.ndarray, np.ndarray]  # (rgb float32 [h, w, 3], alpha float32 [h, w])


def _pt(x: float, y: float, p: int) -> tuple[int, int]:
    return int(round(x * p)), int(round(y * p))


def _draw_shape(shape: str, body, accent, p: int, img: np.ndarray, mask: np.ndarray) -> None:
    """Draw one sprite shape into `img` ([p, p, 3]) and its coverage into `mask` ([p, p])."""

    def both(fn, *args, colour, thickness=-1, **kw):
        fn(img, *args, colour, thickness, cv2.LINE_AA, **kw)
        fn(mask, *args, 1.0, thickness, cv2.LINE_AA, **kw)

    def ell(cx, cy, ax, ay, colour, angle=0.0, thickness=-1, on_mask=True):
        args = (_pt(cx, cy, p), (max(1, int(ax * p)), max(1, int(ay * p))), angle, 0, 360)
        if on_mask:
            both(cv2.ellipse, *args, colour=colour, thickness=thickness)
        else:
            cv2.ellipse(img, *args, colour, thickness, cv2.LINE_AA)

    def rect(x0, y0, x1, y1, colour, on_mask=True, thickness=-1):
        if on_mask:
            both(cv2.rectangle, _pt(x0, y0, p), _pt(x1, y1, p), colour=colour, thickness=thickness)
        else:
            cv2.rectangle(img, _pt(x0, y0, p), _pt(x1, y1, p), colour, thickness, cv2.LINE_AA)

    def poly(points, colour, on_mask=True):
        pts = np.array([_pt(x, y, p) for x, y in points], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
        if on_mask:
            cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA)

    line_w = max(1, p // 16)
    if shape == "round_stem":  # tomato: red ball with a green star on top
        ell(0.5, 0.55, 0.4, 0.38, body)
        for angle in (0, 60, 120):
            ell(0.5, 0.2, 0.14, 0.05, accent, angle=angle)
        ell(0.36, 0.45, 0.07, 0.05, (255, 200, 190), on_mask=False)
    elif shape == "oval":  # egg: tall off-white oval with a soft shadow
        ell(0.5, 0.52, 0.3, 0.42, body)
        ell(0.58, 0.62, 0.16, 0.22, accent, on_mask=False)
    elif shape == "rings":  # onion: purple ball with concentric rings and a sprout
        ell(0.5, 0.56, 0.4, 0.38, body)
        for r in (0.3, 0.2, 0.1):
            ell(0.5, 0.56, r, r * 0.95, accent, thickness=line_w, on_mask=False)
        poly([(0.45, 0.2), (0.5, 0.04), (0.55, 0.2)], body)
    elif shape == "long_leaf":  # carrot: long orange cone, green leaves, ridges
        poly([(0.32, 0.25), (0.68, 0.25), (0.5, 0.97)], body)
        for x in (0.4, 0.5, 0.6):
            poly([(x - 0.05, 0.26), (x, 0.02), (x + 0.05, 0.26)], accent)
        for y in (0.4, 0.55, 0.7):
            cv2.line(img, _pt(0.4, y, p), _pt(0.55, y, p), (200, 90, 10), line_w, cv2.LINE_AA)
    elif shape == "spotted":  # potato: brown lumpy oval with dark eyes
        ell(0.5, 0.5, 0.44, 0.32, body, angle=-10)
        for x, y in ((0.32, 0.42), (0.55, 0.35), (0.62, 0.6), (0.42, 0.62)):
            ell(x, y, 0.04, 0.03, accent, on_mask=False)
    elif shape == "wedge_holes":  # cheese: yellow wedge with holes
        poly([(0.08, 0.82), (0.92, 0.82), (0.92, 0.2)], body)
        for x, y, r in ((0.7, 0.62, 0.06), (0.82, 0.42, 0.04), (0.5, 0.72, 0.04)):
            ell(x, y, r, r, accent, on_mask=False)
    elif shape == "loaf":  # bread slice: tan square with a rounded top and dark crust
        rect(0.18, 0.38, 0.82, 0.9, body)
        ell(0.5, 0.38, 0.32, 0.24, body)
        rect(0.18, 0.38, 0.82, 0.9, accent, on_mask=False, thickness=line_w + 1)
        ell(0.5, 0.38, 0.32, 0.24, accent, thickness=line_w + 1, on_mask=False)
        rect(0.21, 0.4, 0.79, 0.87, body, on_mask=False)
    elif shape == "blob":  # dough: big pale lumpy blob
        ell(0.5, 0.55, 0.44, 0.34, body)
        ell(0.35, 0.4, 0.2, 0.18, body)
        ell(0.65, 0.42, 0.22, 0.18, body)
        ell(0.5, 0.55, 0.25, 0.15, accent, on_mask=False)
    elif shape == "block_band":  # butter: pale yellow block, half wrapped in blue paper
        rect(0.12, 0.3, 0.88, 0.72, body)
        rect(0.55, 0.3, 0.88, 0.72, accent)
        cv2.line(img, _pt(0.6, 0.5, p), _pt(0.83, 0.5, p), (250, 250, 250), line_w, cv2.LINE_AA)
    elif shape == "carton":  # milk: white carton with a blue band and a gable top
        rect(0.25, 0.3, 0.75, 0.95, body)
        poly([(0.25, 0.3), (0.5, 0.08), (0.75, 0.3)], body)
        rect(0.25, 0.5, 0.75, 0.7, accent)
    elif shape == "bottle":  # oil: olive bottle with a narrow neck and a dark label
        rect(0.3, 0.38, 0.7, 0.96, body)
        rect(0.42, 0.06, 0.58, 0.4, body)
        rect(0.3, 0.55, 0.7, 0.75, accent)
    elif shape in ("shaker_dots", "shaker_dark"):  # salt / pepper: shaker with a holed cap
        rect(0.3, 0.3, 0.7, 0.95, body)
        ell(0.5, 0.3, 0.2, 0.14, accent)
        for x in (0.42, 0.5, 0.58):
            ell(
                x,
                0.28,
                0.025,
                0.025,
                (20, 20, 20) if shape == "shaker_dots" else (240, 240, 240),
                on_mask=False,
            )
    elif shape == "florets":  # broccoli: light stem under a cluster of dark-green florets
        rect(0.43, 0.5, 0.57, 0.95, accent)
        for x, y in ((0.3, 0.42), (0.5, 0.3), (0.7, 0.42), (0.4, 0.52), (0.6, 0.52)):
            ell(x, y, 0.18, 0.17, body)
        for x, y in ((0.33, 0.38), (0.55, 0.26), (0.68, 0.45)):
            ell(x, y, 0.04, 0.04, (20, 80, 30), on_mask=False)
    elif shape == "long_stripes":  # cucumber: long green body with light stripes
        ell(0.5, 0.5, 0.47, 0.2, body, angle=-20)
        for dy in (-0.08, 0.0, 0.08):
            cv2.line(img, _pt(0.2, 0.6 + dy, p), _pt(0.78, 0.38 + dy, p), accent, line_w, cv2.LINE_AA)
    elif shape == "drumstick":  # chicken: pink meat with a white bone
        rect(0.55, 0.12, 0.65, 0.5, accent)
        ell(0.6, 0.12, 0.08, 0.06, accent)
        ell(0.5, 0.65, 0.3, 0.3, body, angle=20)
    elif shape == "fish":  # fish: blue-grey body, tail, eye and fin
        ell(0.45, 0.5, 0.34, 0.2, body)
        poly([(0.72, 0.5), (0.97, 0.28), (0.97, 0.72)], body)
        ell(0.24, 0.45, 0.04, 0.04, (20, 20, 30), on_mask=False)
        poly([(0.4, 0.32), (0.55, 0.18), (0.6, 0.34)], accent)
    elif shape == "wavy":  # noodles: a tangle of thick wavy yellow lines
        for k, y0 in enumerate((0.3, 0.42, 0.54, 0.66, 0.78)):
            xs = np.linspace(0.1, 0.9, 14)
            ys = y0 + 0.05 * np.sin(xs * 14 + k)
            pts = np.array([_pt(x, y, p) for x, y in zip(xs, ys)], dtype=np.int32)
            cv2.polylines(img, [pts], False, body if k % 2 == 0 else accent, line_w + 1, cv2.LINE_AA)
            cv2.polylines(mask, [pts], False, 1.0, line_w + 1, cv2.LINE_AA)
    elif shape == "cap_stem":  # mushroom: brown dome over a pale stem
        rect(0.4, 0.45, 0.6, 0.9, accent)
        both(cv2.ellipse, _pt(0.5, 0.5, p), (int(0.42 * p), int(0.34 * p)), 0, 180, 360, colour=body)
        ell(0.38, 0.34, 0.05, 0.04, (180, 140, 120), on_mask=False)
    elif shape == "disk_ring":  # pancake: golden flat disk with a darker rim
        ell(0.5, 0.55, 0.45, 0.3, body)
        ell(0.5, 0.55, 0.45, 0.3, accent, thickness=line_w + 1, on_mask=False)
        ell(0.45, 0.5, 0.1, 0.05, (240, 200, 120), on_mask=False)
    elif shape == "crescent":  # banana: yellow crescent with brown tips
        both(cv2.ellipse, _pt(0.5, 0.3, p), (int(0.42 * p), int(0.5 * p)), 0, 20, 160, colour=body)
        cv2.ellipse(
            img, _pt(0.5, 0.15, p), (int(0.4 * p), int(0.5 * p)), 0, 20, 160, (0, 0, 0), -1, cv2.LINE_AA
        )
        cv2.ellipse(mask, _pt(0.5, 0.15, p), (int(0.4 * p), int(0.5 * p)), 0, 20, 160, 0.0, -1, cv2.LINE_AA)
        for x in (0.13, 0.87):
            ell(x, 0.55, 0.04, 0.04, accent)
    elif shape == "jar":  # sauce: dark red jar with a gold lid
        rect(0.22, 0.3, 0.78, 0.95, body)
        rect(0.26, 0.16, 0.74, 0.3, accent)
        rect(0.3, 0.5, 0.7, 0.7, (235, 225, 200), on_mask=False)
    else:
        raise ValueError(f"unknown sprite shape {shape!r}")


@lru_cache(maxsize=256)
def sprite(noun: str, size: int) -> Patch:
    """The noun's sprite as (rgb float32 [size, size, 3], alpha float32 [size, size])."""
    spec = NOUNS[noun]
    size = max(4, int(size))
    img = np.zeros((size, size, 3), dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.float32)
    _draw_shape(
        spec.shape,
        tuple(float(c) for c in spec.colour),
        tuple(float(c) for c in spec.accent),
        size,
        img,
        mask,
    )
    mask = np.clip(mask, 0.0, 1.0)
    img.setflags(write=False)
    mask.setflags(write=False)
    return img, mask


def scale(patch: Patch, sx: float, sy: float | None = None) -> Patch:
    """Resize a patch by factors (sx, sy); a negative sy also mirrors it top to bottom."""
    rgb, alpha = patch
    sy = sx if sy is None else sy
    h, w = alpha.shape
    new_w, new_h = max(1, int(round(w * abs(sx)))), max(1, int(round(h * abs(sy))))
    rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(alpha, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if sy < 0:
        rgb, alpha = rgb[::-1], alpha[::-1]
    return rgb, alpha


def rotate(patch: Patch, degrees: float) -> Patch:
    """Rotate a patch about its centre (counter-clockwise), growing it so nothing is cut off."""
    rgb, alpha = patch
    h, w = alpha.shape
    side = int(np.ceil(np.hypot(h, w)))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    matrix[:, 2] += ((side - w) / 2, (side - h) / 2)
    rgb = cv2.warpAffine(rgb, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    alpha = cv2.warpAffine(alpha, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
    return rgb, alpha


def tint(
    patch: Patch, colour: tuple[int, int, int] | np.ndarray, amount: float, region: np.ndarray | None = None
) -> Patch:
    """Blend a patch towards `colour` by `amount` (0..1), only inside `region` ([h, w] bool) if given."""
    rgb, alpha = patch
    target = np.asarray(colour, dtype=np.float32)
    weight = np.float32(amount) if region is None else region[..., None].astype(np.float32) * amount
    return rgb * (1 - weight) + target * weight, alpha


def paste(canvas: np.ndarray, patch: Patch, cx: float, cy: float) -> None:
    """Alpha-blend a patch onto `canvas` (float32 [H, W, 3]) centred at pixel (cx, cy), clipped."""
    rgb, alpha = patch
    h, w = alpha.shape
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(canvas.shape[1], x0 + w), min(canvas.shape[0], y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    a = alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]  # [h', w']
    a = np.repeat(a[..., None], 3, axis=2)  # [h', w', 3]: no broadcast over RGB, so numpy loops fast
    src = rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]  # [h', w', 3]
    region = canvas[cy0:cy1, cx0:cx1]  # a view: blended in place
    region *= 1 - a
    region += src * a

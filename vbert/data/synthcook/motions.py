"""One motion per verb: how the tools and the ingredient move at time t of a step.

Each verb is told apart by motion (a knife going up and down while the ingredient splits, a
spoon circling in a pot, a stream pouring, a pan tossing, bubbles rising, ...). Motions are
periodic with a period under 1.6 s, so any 1.5 s clip of a step shows what the step is.
All lengths are in units of `u` (the frame's short side), so any resolution works.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vbert.data.synthcook import sprites
from vbert.data.synthcook.world import NOUNS

STEEL, DARK, WOOD, BOARD = (195, 198, 205), (55, 55, 60), (150, 100, 55), (185, 135, 80)
WATER, BOWL, PAN = (90, 150, 215), (225, 235, 240), (35, 35, 38)


@dataclass
class MotionContext:
    """Everything a motion needs at one frame."""

    canvas: np.ndarray  # float32 [H, W, 3] RGB, drawn on in place
    noun: str
    t: float  # seconds since the step started
    u: float  # pixels per unit (the frame's short side)
    cx: float  # action centre, pixels
    cy: float
    tempo: float  # period multiplier (about 0.85 to 1.15)
    size: int  # sprite size in pixels
    colour_gain: np.ndarray  # float32 [3], small per-step colour variation of the sprite
    noise: np.ndarray  # float64 [64] in [0, 1): fixed random numbers of this step
    frame: int  # frame index within the step (for flicker)

    def px(self, dx: float, dy: float) -> tuple[int, int]:
        """Pixel position of an offset (in units) from the action centre."""
        return int(round(self.cx + dx * self.u)), int(round(self.cy + dy * self.u))

    def patch(self, factor: float = 1.0) -> sprites.Patch:
        """The noun's sprite at `factor` times the step's sprite size, with its colour variation."""
        rgb, alpha = sprites.sprite(self.noun, max(4, int(self.size * factor)))
        return np.minimum(rgb * self.colour_gain, 255.0), alpha

    def phase(self, period: float) -> tuple[int, float]:
        """(completed cycles, position in the current cycle in [0, 1)) for a period in seconds."""
        cycles = self.t / (period * self.tempo)
        return int(cycles), cycles - int(cycles)

    def put(self, patch: sprites.Patch, dx: float, dy: float) -> None:
        """Paste a patch centred at an offset (units) from the action centre."""
        sprites.paste(self.canvas, patch, self.cx + dx * self.u, self.cy + dy * self.u)

    def flicker(self, k: int) -> float:
        """A pseudo-random number in [0, 1) that changes every frame (deterministic)."""
        value = math.sin(k * 12.9898 + self.frame * 78.233 + self.noise[k % 64] * 43.7) * 43758.5453
        return value - math.floor(value)


def _ellipse(ctx, dx, dy, ax, ay, colour, thickness=-1, start=0, end=360):
    cv2.ellipse(
        ctx.canvas,
        ctx.px(dx, dy),
        (max(1, int(ax * ctx.u)), max(1, int(ay * ctx.u))),
        0,
        start,
        end,
        colour,
        thickness,
        cv2.LINE_AA,
    )


def _line(ctx, a, b, colour, width):
    cv2.line(ctx.canvas, ctx.px(*a), ctx.px(*b), colour, max(1, int(width * ctx.u)), cv2.LINE_AA)


def _rect(ctx, x0, y0, x1, y1, colour):
    cv2.rectangle(ctx.canvas, ctx.px(x0, y0), ctx.px(x1, y1), colour, -1, cv2.LINE_AA)


def _bowl_side(ctx, dy=0.22, fill=None, level=0.0):
    _ellipse(ctx, 0, dy, 0.3, 0.16, BOWL, start=0, end=180)
    _ellipse(ctx, 0, dy, 0.3, 0.05, (170, 180, 190))
    if fill is not None and level > 0:
        _ellipse(ctx, 0, dy, 0.27 * min(1.0, 0.4 + level), 0.04, fill)


def cut(ctx: MotionContext) -> None:
    """A knife chops down again and again while the ingredient falls apart into slices."""
    done, phase = ctx.phase(0.7)
    _rect(ctx, -0.38, -0.18, 0.38, 0.22, BOARD)
    ctx.put(ctx.patch(0.6), 0.34, -0.34)  # another one, still whole, waits on the counter
    rgb, alpha = ctx.patch()
    slices = min(5, 1 + done)
    edges = np.linspace(0, rgb.shape[1], slices + 1).astype(int)
    gap = 0.035
    for j in range(slices):
        piece = (rgb[:, edges[j] : edges[j + 1]].copy(), alpha[:, edges[j] : edges[j + 1]])
        if j > 0:  # the cut face shows the inside colour
            piece[0][:, :2] = NOUNS[ctx.noun].inner
        offset = (edges[j] + edges[j + 1]) / 2 / rgb.shape[1] - 0.5
        ctx.put(piece, offset * ctx.size / ctx.u + (j - (slices - 1) / 2) * gap, 0.02)
    x = -0.15 + 0.3 * ((done % 4) / 3)
    drop = 1 - abs(2 * phase - 1)  # 0 up, 1 down
    y = -0.42 + 0.38 * drop
    _rect(ctx, x - 0.02, y, x + 0.02, y + 0.26, STEEL)
    _rect(ctx, x - 0.025, y - 0.14, x + 0.025, y, (70, 40, 20))


def stir(ctx: MotionContext) -> None:
    """A spoon circles in a pot seen from above, the pieces swirling with it."""
    _, phase = ctx.phase(1.0)
    angle = 2 * math.pi * phase
    _ellipse(ctx, 0, 0, 0.36, 0.36, DARK)
    _ellipse(ctx, 0, 0, 0.31, 0.31, (120, 85, 55))
    ctx.put(ctx.patch(0.6), -0.36, -0.36)  # the ingredient, whole, next to the pot
    piece = ctx.patch(0.5)
    for k in range(5):
        a = angle + k * 2 * math.pi / 5
        ctx.put(piece, 0.17 * math.cos(a), 0.17 * math.sin(a))
    tip = (0.12 * math.cos(angle + 0.6), 0.12 * math.sin(angle + 0.6))
    _line(ctx, tip, (0.45, -0.45), WOOD, 0.035)
    _ellipse(ctx, tip[0], tip[1], 0.05, 0.04, WOOD)


def pour(ctx: MotionContext) -> None:
    """The container tilts over a bowl and a stream of its contents runs down, the bowl filling."""
    tilt = min(1.0, ctx.t / (0.6 * ctx.tempo))
    inner = NOUNS[ctx.noun].inner
    _bowl_side(ctx, fill=inner, level=min(1.0, ctx.t / 4))
    angle = -100 * tilt + 6 * math.sin(ctx.t * 5)
    ctx.put(sprites.rotate(ctx.patch(0.85), angle), -0.2, -0.25)
    if tilt >= 1.0:
        wobble = 0.01 * math.sin(ctx.t * 17)
        _line(ctx, (-0.02, -0.2), (wobble, 0.2), inner, 0.035 + 0.01 * math.sin(ctx.t * 9))


def crack(ctx: MotionContext) -> None:
    """An egg comes down on the rim of a bowl, splits in two halves and the yolk drops in."""
    done, phase = ctx.phase(1.5)
    inner = NOUNS[ctx.noun].inner
    _bowl_side(ctx, fill=inner, level=min(1.0, done / 3))
    rgb, alpha = ctx.patch(0.8)
    if phase < 0.35:
        ctx.put((rgb, alpha), 0, -0.42 + 0.45 * phase / 0.35 - 0.05)
        return
    opened = min(1.0, (phase - 0.35) / 0.25)
    half = rgb.shape[1] // 2
    left, right = (rgb[:, :half], alpha[:, :half]), (rgb[:, half:], alpha[:, half:])
    spread = 0.05 + 0.12 * opened
    ctx.put(sprites.rotate(left, 35 * opened), -spread, -0.05)
    ctx.put(sprites.rotate(right, -35 * opened), spread, -0.05)
    if phase > 0.45:
        fall = min(1.0, (phase - 0.45) / 0.3)
        _ellipse(ctx, 0, -0.02 + 0.22 * fall, 0.06, 0.05, inner)


def peel(ctx: MotionContext) -> None:
    """A peeler strokes down the ingredient; each stroke bares a band of its inside, peel curls fall."""
    done, phase = ctx.phase(0.8)
    spec = NOUNS[ctx.noun]
    ctx.put(ctx.patch(0.6), 0.34, -0.34)  # one still to peel
    rgb, alpha = ctx.patch(1.2)
    h, w = alpha.shape
    bands = 4  # at most about half of the skin comes off, so the ingredient stays recognisable
    band = done % bands
    cols = np.zeros((h, w), dtype=bool)
    for j in range(min(done, bands)):
        cols[:, int(w * (0.26 + 0.12 * j)) : int(w * (0.26 + 0.12 * (j + 1)))] = True
    current = np.zeros((h, w), dtype=bool)
    x0, x1 = int(w * (0.26 + 0.12 * band)), int(w * (0.26 + 0.12 * (band + 1)))
    current[: int(h * phase), x0:x1] = True
    ctx.put(sprites.tint((rgb, alpha), spec.inner, 0.7, cols | current), 0, -0.05)
    sx = (x0 + x1) / 2 / w - 0.5
    px_x, px_y = sx * ctx.size * 1.2 / ctx.u, -0.05 + (phase - 0.5) * ctx.size * 1.2 / ctx.u
    _line(ctx, (px_x, px_y - 0.03), (px_x + 0.25, px_y - 0.2), (90, 90, 95), 0.03)
    _rect(ctx, px_x - 0.04, px_y - 0.015, px_x + 0.04, px_y + 0.015, STEEL)
    for k in range(min(done, 12)):
        x, y = -0.3 + 0.6 * ctx.noise[k], 0.32 + 0.08 * ctx.noise[k + 12]
        _ellipse(ctx, x, y, 0.04, 0.015, spec.colour, thickness=max(1, int(0.015 * ctx.u)), start=0, end=220)


def flip(ctx: MotionContext) -> None:
    """A pan tosses the ingredient up; it turns over in the air and lands."""
    _, phase = ctx.phase(1.3)
    kick = 0.03 if 0.15 < phase < 0.25 else 0.0
    ctx.put(ctx.patch(0.6), 0.34, -0.34)
    _ellipse(ctx, 0, 0.22 - kick, 0.34, 0.06, PAN)
    _line(ctx, (0.32, 0.22 - kick), (0.55, 0.15 - kick), DARK, 0.04)
    patch = ctx.patch(0.9)
    if 0.2 <= phase < 0.8:
        air = (phase - 0.2) / 0.6
        height = 0.38 * math.sin(math.pi * air)
        turn = math.cos(2 * math.pi * air)
        rgb, alpha = sprites.scale(patch, 1.0, turn if abs(turn) > 0.08 else 0.08)
        if turn < 0:
            rgb = rgb * 0.8  # the other side is a little darker
        ctx.put((rgb, alpha), 0, 0.1 - height)
    else:
        ctx.put(sprites.scale(patch, 1.0, 0.55), 0, 0.14 - kick)


def fry(ctx: MotionContext) -> None:
    """The ingredient sizzles in a pan seen from above: it browns, oil spits, the pan shakes."""
    shake = 0.015 * math.sin(2 * math.pi * ctx.t / (0.5 * ctx.tempo))
    ctx.put(ctx.patch(0.6), 0.34, -0.34)
    ctx.cx += shake * ctx.u
    _line(ctx, (0.3, 0.05), (0.62, 0.25), DARK, 0.05)
    _ellipse(ctx, 0, 0, 0.35, 0.33, PAN)
    _ellipse(ctx, 0, 0, 0.3, 0.28, (60, 55, 45))
    browned = sprites.tint(ctx.patch(0.95), (110, 60, 25), min(0.35, ctx.t / 10))
    ctx.put(browned, 0, 0)
    for k in range(14):
        if ctx.flicker(k) < 0.55:
            a, r = 2 * math.pi * ctx.flicker(k + 20), 0.12 + 0.15 * ctx.flicker(k + 40)
            _ellipse(ctx, r * math.cos(a), r * math.sin(a), 0.012, 0.012, (255, 250, 200))
    ctx.cx -= shake * ctx.u


def boil(ctx: MotionContext) -> None:
    """The ingredient bobs in a pot of water while bubbles rise and steam curls up."""
    _rect(ctx, -0.32, -0.12, 0.32, 0.32, (150, 155, 165))
    _rect(ctx, -0.29, -0.08, 0.29, 0.29, WATER)
    bob = 0.03 * math.sin(2 * math.pi * ctx.t / (0.9 * ctx.tempo))
    ctx.put(ctx.patch(0.8), 0, 0.08 + bob)
    for k in range(9):
        rise = (ctx.t / (0.8 * ctx.tempo) + ctx.noise[k]) % 1.0
        x = -0.25 + 0.5 * ctx.noise[k + 9] + 0.01 * math.sin(ctx.t * 7 + k)
        _ellipse(
            ctx, x, 0.27 - 0.33 * rise, 0.018, 0.018, (225, 240, 255), thickness=max(1, int(0.01 * ctx.u))
        )
    for k in range(3):
        rise = (ctx.t / (1.2 * ctx.tempo) + k / 3) % 1.0
        x = -0.15 + 0.15 * k + 0.03 * math.sin(6 * rise + k)
        _line(ctx, (x, -0.14 - 0.3 * rise), (x + 0.03, -0.2 - 0.3 * rise), (235, 235, 240), 0.012)


def roll(ctx: MotionContext) -> None:
    """A rolling pin goes back and forth over the dough, which spreads wider and thinner."""
    _, phase = ctx.phase(1.0)
    _rect(ctx, -0.42, -0.3, 0.42, 0.32, BOARD)
    grow = min(1.0, ctx.t / 5)
    flat = sprites.tint(
        sprites.scale(ctx.patch(), 1 + 0.5 * grow, 1 + 0.25 * grow), (250, 240, 215), 0.3 * grow
    )
    ctx.put(flat, 0, 0)
    y = 0.16 * math.sin(2 * math.pi * phase)
    _rect(ctx, -0.36, y - 0.045, 0.36, y + 0.045, (215, 175, 120))
    _rect(ctx, -0.46, y - 0.02, -0.36, y + 0.02, WOOD)
    _rect(ctx, 0.36, y - 0.02, 0.46, y + 0.02, WOOD)


def mash(ctx: MotionContext) -> None:
    """A masher presses down fast again and again; the ingredient in the bowl gets flatter and paler."""
    _, phase = ctx.phase(0.6)
    press = max(0.0, math.sin(2 * math.pi * phase))
    ctx.put(ctx.patch(0.6), 0.34, -0.34)
    flat = min(1.0, ctx.t / 4)
    squash = 1 - 0.45 * flat - 0.15 * press
    patch = sprites.tint(
        sprites.scale(ctx.patch(0.9), 1 + 0.4 * flat, squash), NOUNS[ctx.noun].inner, 0.35 * flat
    )
    ctx.put(patch, 0, 0.18 - 0.5 * squash * ctx.size / ctx.u * 0.9 * 0.5)
    _bowl_side(ctx, dy=0.2)
    y = -0.02 + 0.12 * press
    _line(ctx, (0, y - 0.4), (0, y), WOOD, 0.035)
    _rect(ctx, -0.13, y, 0.13, y + 0.035, STEEL)
    for x in (-0.08, 0.0, 0.08):
        _line(ctx, (x, y + 0.035), (x, y + 0.06), STEEL, 0.015)


def whisk(ctx: MotionContext) -> None:
    """A whisk beats fast from side to side in a bowl seen from above; the contents swirl."""
    spec = NOUNS[ctx.noun]
    ctx.put(ctx.patch(0.7), -0.32, -0.3)
    _ellipse(ctx, 0.05, 0.08, 0.34, 0.3, BOWL)
    _ellipse(ctx, 0.05, 0.08, 0.26, 0.22, spec.inner)
    swirl = ctx.t * 2.0
    for k in range(3):
        a = swirl + k * 2.1
        _ellipse(ctx, 0.05 + 0.1 * math.cos(a), 0.08 + 0.08 * math.sin(a), 0.05, 0.02, spec.accent)
    x = 0.05 + 0.14 * math.sin(2 * math.pi * ctx.t / (0.35 * ctx.tempo))
    _line(ctx, (x, 0.05), (x + 0.3, -0.38), (80, 80, 85), 0.03)
    for w in (0.03, 0.055, 0.08):
        _ellipse(ctx, x, 0.1, w, 0.09, (215, 215, 225), thickness=max(1, int(0.012 * ctx.u)))


def grate(ctx: MotionContext) -> None:
    """The ingredient rubs up and down a grater; shreds pile up under it."""
    _rect(ctx, -0.2, -0.3, 0.08, 0.25, STEEL)
    for row in range(6):
        for col in range(3):
            _ellipse(ctx, -0.15 + 0.09 * col, -0.24 + 0.085 * row, 0.015, 0.01, (80, 80, 90))
    count = min(30, int(ctx.t * 10))
    colour = NOUNS[ctx.noun].inner
    for k in range(count):
        x, y = -0.25 + 0.4 * ctx.noise[k], 0.3 + 0.08 * ctx.noise[k + 30]
        _line(ctx, (x, y), (x + 0.04, y - 0.015), colour, 0.015)
    y = -0.03 + 0.16 * math.sin(2 * math.pi * ctx.t / (0.5 * ctx.tempo))
    ctx.put(ctx.patch(0.9), 0.12, y)


def sprinkle(ctx: MotionContext) -> None:
    """An upturned shaker shakes over a plate; grains fall and gather on the plate."""
    colour = NOUNS[ctx.noun].inner
    _ellipse(ctx, 0, 0.3, 0.36, 0.1, (245, 245, 245))
    _ellipse(ctx, 0, 0.3, 0.26, 0.06, (225, 200, 170))
    shake = 0.06 * math.sin(2 * math.pi * ctx.t / (0.3 * ctx.tempo))
    ctx.put(sprites.rotate(ctx.patch(0.75), 160), shake, -0.3)
    for k in range(14):
        fall = (ctx.t * 1.4 / ctx.tempo + ctx.noise[k]) % 1.0
        x = shake * (1 - fall) + 0.1 * (ctx.noise[k + 14] - 0.5) * (1 + fall)
        _ellipse(ctx, x, -0.15 + 0.42 * fall, 0.012, 0.012, colour)
    for k in range(min(30, int(ctx.t * 8))):
        _ellipse(ctx, 0.4 * (ctx.noise[k + 28] - 0.5), 0.27 + 0.06 * ctx.noise[k + 32], 0.01, 0.01, colour)


def spread(ctx: MotionContext) -> None:
    """A flat knife sweeps side to side over a slice of bread, leaving a growing layer."""
    _rect(ctx, -0.42, -0.28, 0.42, 0.34, BOARD)
    ctx.put(sprites.scale(sprites.sprite("bread", int(ctx.size * 1.3)), 1.0), 0.05, 0.05)
    cover = min(1.0, ctx.t / 3)
    _ellipse(ctx, 0.05, 0.08, 0.05 + 0.15 * cover, 0.04 + 0.1 * cover, NOUNS[ctx.noun].inner)
    ctx.put(ctx.patch(0.7), -0.3, -0.3)
    x = 0.05 + 0.15 * math.sin(2 * math.pi * ctx.t / (0.8 * ctx.tempo))
    _rect(ctx, x - 0.14, 0.02, x + 0.06, 0.055, STEEL)
    _rect(ctx, x + 0.06, 0.02, x + 0.2, 0.05, (40, 30, 25))


def add(ctx: MotionContext) -> None:
    """Pieces of the ingredient are dropped one by one in an arc into a bowl."""
    done, phase = ctx.phase(1.2)
    _bowl_side(ctx, dy=0.24)
    piece = ctx.patch(0.6)
    for k in range(min(done, 4)):
        ctx.put(piece, -0.12 + 0.08 * k, 0.18)
    ctx.put(ctx.patch(0.85), -0.33, -0.3)
    if phase < 0.65:
        s = phase / 0.65
        ctx.put(piece, -0.3 + 0.3 * s, -0.25 - 0.2 * math.sin(math.pi * s) + 0.45 * s * s)
    _ellipse(ctx, 0, 0.24, 0.3, 0.16, BOWL, start=0, end=180)


MOTIONS: dict[str, Callable[[MotionContext], None]] = {
    "cut": cut,
    "stir": stir,
    "pour": pour,
    "crack": crack,
    "peel": peel,
    "flip": flip,
    "roll": roll,
    "fry": fry,
    "boil": boil,
    "sprinkle": sprinkle,
    "mash": mash,
    "whisk": whisk,
    "grate": grate,
    "spread": spread,
    "add": add,
}


def idle(ctx: MotionContext) -> None:
    """Between steps: the next ingredient rests on the counter, nothing happens."""
    ctx.put(ctx.patch(0.8), 0.0, 0.05)

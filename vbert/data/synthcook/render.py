"""Render a timeline of steps into frames: a kitchen, distractors, camera jitter and lighting.

The scene is drawn on a canvas a little larger than the frame; the camera is a crop window
that drifts a few pixels (jitter), and lighting is a slow gain and a colour cast per video.
Everything is decided by a seed, so the same seed gives the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vbert.data.synthcook.motions import MOTIONS, MotionContext, idle

KITCHENS = ("wood", "tiles", "marble", "checker", "plain", "stripes")
DISTRACTORS = ("cup", "plate", "towel", "plant", "clock", "spoon")


@dataclass
class TimelineItem:
    """What is on screen from `start` to `end` seconds: a verb done to a noun, or "idle"."""

    verb: str  # a verb name, or "idle"
    noun: str
    start: float
    end: float
    occluded: bool = False  # a cloth hides the work area while the action happens


def _kitchen(style: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A counter/background texture, float32 [height, width, 3] RGB."""
    # muted colours (a grey level plus a mild tint), so the ingredients stand out as in a real kitchen
    base = np.clip(rng.uniform(70, 200) + rng.normal(0, 18, size=3), 0, 255).astype(np.float32)
    other = np.clip(base + rng.uniform(-35, 35) + rng.normal(0, 8, size=3), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = float(min(height, width))
    if style == "wood":
        grain = np.sin(yy / u * rng.uniform(25, 45) + 2.0 * np.sin(xx / u * rng.uniform(3, 7)))
        weight = (0.5 + 0.5 * grain)[..., None]
    elif style == "tiles":
        step = int(u * rng.uniform(0.18, 0.3))
        weight = (((yy.astype(int) % step) < 2) | ((xx.astype(int) % step) < 2)).astype(np.float32)[..., None]
    elif style == "marble":
        noise = rng.random((max(2, height // 12), max(2, width // 12))).astype(np.float32)
        weight = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)[..., None] * 0.7
    elif style == "checker":
        step = int(u * rng.uniform(0.15, 0.25))
        weight = (((yy.astype(int) // step) + (xx.astype(int) // step)) % 2).astype(np.float32)[..., None]
    elif style == "stripes":
        period = u * rng.uniform(0.12, 0.2)
        weight = (((xx + yy) % period) < period / 2).astype(np.float32)[..., None]
    else:  # plain, with a fine speckle
        weight = (rng.random((height, width)) < 0.06).astype(np.float32)[..., None] * 0.6
    bg = base * (1 - weight) + other * weight
    bg += rng.normal(0, 4, size=bg.shape).astype(np.float32)  # sensor-like grain
    return np.clip(bg, 0, 255).astype(np.float32)


def _distractor(
    canvas: np.ndarray, kind: str, x: float, y: float, u: float, rng: np.random.Generator
) -> None:
    """Draw one static object that has nothing to do with the recipe."""
    colour = tuple(float(c) for c in np.clip(rng.uniform(90, 220) + rng.normal(0, 25, size=3), 0, 255))
    r = int(u * 0.08)
    p = (int(x), int(y))
    if kind == "cup":
        cv2.rectangle(canvas, (p[0] - r, p[1] - r), (p[0] + r, p[1] + r), colour, -1)
        cv2.circle(canvas, (p[0] + r, p[1]), r // 2, colour, max(1, r // 4))
    elif kind == "plate":
        cv2.ellipse(canvas, p, (int(r * 1.5), r), 0, 0, 360, (240, 240, 235), -1, cv2.LINE_AA)
        cv2.ellipse(canvas, p, (int(r * 1.0), int(r * 0.6)), 0, 0, 360, colour, 1, cv2.LINE_AA)
    elif kind == "towel":
        cv2.rectangle(canvas, (p[0] - r, p[1] - int(1.5 * r)), (p[0] + r, p[1] + int(1.5 * r)), colour, -1)
        for k in range(-1, 2):
            yk = p[1] + k * r // 2
            cv2.line(canvas, (p[0] - r, yk), (p[0] + r, yk), (250, 250, 250), max(1, r // 5))
    elif kind == "plant":
        cv2.rectangle(canvas, (p[0] - r // 2, p[1]), (p[0] + r // 2, p[1] + r), (160, 80, 50), -1)
        for dx in (-r // 2, 0, r // 2):
            cv2.circle(canvas, (p[0] + dx, p[1] - r // 3), r // 2, (50, 140 + dx % 40, 60), -1, cv2.LINE_AA)
    elif kind == "spoon":
        cv2.line(canvas, (p[0] - r, p[1] + r), (p[0] + r, p[1] - r), colour, max(1, r // 4), cv2.LINE_AA)
        cv2.ellipse(canvas, (p[0] + r, p[1] - r), (r // 2, r // 3), -45, 0, 360, colour, -1, cv2.LINE_AA)
    # "clock" is drawn every frame (its hand moves), see Scene.frame


@dataclass
class Scene:
    """One video's look: kitchen, distractors, camera path and lighting (decided by a seed)."""

    background: np.ndarray  # float32 [H + 2m, W + 2m, 3]
    margin: int
    width: int
    height: int
    jitter: np.ndarray  # int [T, 2] camera offsets (pixels)
    light_gain: np.ndarray  # float32 [T] brightness over time
    cast: np.ndarray  # float32 [3] colour cast of the lighting
    clock: tuple[float, float] | None  # where a clock with a moving hand is, if any

    @classmethod
    def build(cls, width: int, height: int, num_frames: int, fps: float, rng: np.random.Generator) -> Scene:
        """Draw a random kitchen with distractors and plan the camera and lighting over time."""
        u = float(min(width, height))
        margin = max(2, int(round(0.05 * u)))
        big_h, big_w = height + 2 * margin, width + 2 * margin
        background = _kitchen(str(rng.choice(KITCHENS)), big_h, big_w, rng)
        corners = [(0.14, 0.14), (0.86, 0.14), (0.14, 0.86), (0.86, 0.86), (0.5, 0.1)]
        order = rng.permutation(len(corners))
        kinds = rng.permutation(DISTRACTORS)[: int(rng.integers(1, 4))]
        clock = None
        for kind, corner in zip(kinds, (corners[i] for i in order)):
            x, y = margin + corner[0] * width, margin + corner[1] * height
            if kind == "clock":
                clock = (x, y)
            else:
                _distractor(background, str(kind), x, y, u, rng)
        amount = rng.choice([0.0, 0.4, 1.0])  # some videos are filmed on a tripod
        steps = rng.normal(0, 0.6 * amount, size=(num_frames, 2))
        path = np.cumsum(steps, axis=0)
        path -= np.linspace(0, 1, num_frames)[:, None] * path[-1]  # drift back to centre
        jitter = np.clip(np.round(path), -margin, margin).astype(int)
        t = np.arange(num_frames) / fps
        light = 1.0 + rng.uniform(0.0, 0.12) * np.sin(
            2 * math.pi * t / rng.uniform(3, 9) + rng.uniform(0, 6.3)
        )
        if rng.random() < 0.3:  # a light switched on or a cloud passing
            start = int(rng.integers(0, max(1, num_frames)))
            light[start:] *= rng.uniform(0.8, 1.2)
        cast = rng.uniform(0.94, 1.06, size=3).astype(np.float32)
        return cls(background, margin, width, height, jitter, light.astype(np.float32), cast, clock)

    def frame(self, index: int, item: TimelineItem, t: float, motion: dict) -> np.ndarray:
        """Frame `index` (uint8 [H, W, 3] RGB) showing `item` at `t` seconds into the video."""
        canvas = self.background.copy()
        u = float(min(self.width, self.height))
        if self.clock is not None:
            x, y = int(self.clock[0]), int(self.clock[1])
            r = int(0.07 * u)
            cv2.circle(canvas, (x, y), r, (245, 245, 240), -1, cv2.LINE_AA)
            a = t * 1.3
            cv2.line(
                canvas,
                (x, y),
                (int(x + r * math.sin(a)), int(y - r * math.cos(a))),
                (20, 20, 20),
                1,
                cv2.LINE_AA,
            )
        ctx = MotionContext(
            canvas=canvas,
            noun=item.noun,
            t=t - item.start,
            u=u,
            cx=self.margin + motion["cx"] * self.width,
            cy=self.margin + motion["cy"] * self.height,
            tempo=motion["tempo"],
            size=int(motion["size"] * u),
            colour_gain=motion["colour_gain"],
            noise=motion["noise"],
            frame=index,
        )
        (idle if item.verb == "idle" else MOTIONS[item.verb])(ctx)
        if item.occluded:
            _cloth(canvas, ctx, (60 + 170 * motion["noise"][-3:]).astype(np.float32), t)  # its colour
        dx, dy = self.jitter[min(index, len(self.jitter) - 1)]
        m = self.margin
        view = canvas[m + dy : m + dy + self.height, m + dx : m + dx + self.width]  # [H, W, 3]
        return apply_light(view, self.light_gain[min(index, len(self.light_gain) - 1)] * self.cast)


def _cloth(canvas: np.ndarray, ctx: MotionContext, colour: np.ndarray, t: float) -> None:
    """A cloth hanging in front of the work area, swaying a little: it hides the tools and the ingredient."""
    sway = 0.02 * ctx.u * math.sin(2 * math.pi * t / 2.3)
    x0, x1 = int(ctx.cx - 0.4 * ctx.u + sway), int(ctx.cx + 0.4 * ctx.u + sway)
    y0, y1 = int(ctx.cy - 0.38 * ctx.u), int(ctx.cy + 0.36 * ctx.u)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), tuple(float(c) for c in colour), -1)
    fold = tuple(float(c) * 0.8 for c in colour)
    for k in range(1, 4):  # folds of the fabric
        x = x0 + k * (x1 - x0) // 4 + int(sway)
        cv2.line(canvas, (x, y0), (x, y1), fold, max(1, int(0.012 * ctx.u)))


def apply_light(view: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """`clip(view * gain, 0, 255)` as uint8 [H, W, 3] for an RGB gain float32 [3], computed fast."""
    # The gain spelled out for every pixel of a row ([W, 3]) lets numpy run one long loop per row
    # instead of a 3-element loop per pixel: 4x faster, and the same float32 products.
    lit = view * np.tile(gain, (view.shape[1], 1))  # [H, W, 3]
    return np.clip(lit, 0, 255, out=lit).astype(np.uint8)


def motion_params(rng: np.random.Generator) -> dict:
    """Per-step variation: where the action happens, how big, how fast, and a colour shift."""
    return {
        "cx": rng.uniform(0.42, 0.58),
        "cy": rng.uniform(0.45, 0.58),
        "size": rng.uniform(0.36, 0.44),
        "tempo": rng.uniform(0.85, 1.15),
        "colour_gain": rng.uniform(0.93, 1.07, size=3).astype(np.float32),
        "noise": rng.random(64),
    }


def render_timeline(
    items: list[TimelineItem], duration: float, width: int, height: int, fps: float, seed: int | list[int]
) -> np.ndarray:
    """Render a whole video: frames uint8 [T, height, width, 3] RGB with T = round(duration * fps)."""
    rng = np.random.default_rng(seed)
    num_frames = max(1, int(round(duration * fps)))
    scene = Scene.build(width, height, num_frames, fps, rng)
    params = [motion_params(rng) for _ in items]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    current = 0
    for index in range(num_frames):
        t = index / fps
        while current + 1 < len(items) and t >= items[current].end:
            current += 1
        frames[index] = scene.frame(index, items[current], t, params[current])
    return frames

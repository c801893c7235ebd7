"""Turn a :class:`~.spec.VideoSpec` into frames.

:class:`Renderer` is random access: ``frame(i)`` depends only on the spec and ``i``
(per-scene random choices are drawn from the scene's seed and memoised), so the contact
sheet can render a handful of frames without rendering the whole video, and rendering is
identical whichever worker does it.

Scene kinds (see :data:`.spec.NON_SALIENT_KINDS`):

* ``action``      the class actor, clearly visible, moving; 0-2 distractors behind it.
* ``background``  the location alone, camera panning.
* ``distractors`` 1-3 of the video's shared distractor actors (ball, blob, bar, cloud).
* ``near_miss``   an actor of a random class (any class, independent of the video's:
                  near-misses never hint at the label) but not recognisably: tiny, peeking
                  from behind a foreground panel or the top / bottom frame edge (75-90 %
                  hidden), or badly out of focus.
* ``title``       a title card, or a caption band over the location, with neutral text.
* ``blur``        an out-of-focus shot of the location and distractors.
* ``black``       a black transition.

Every frame gets the video's camera noise; non-salient scenes may fade from / to black.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .backgrounds import contrasting_pair, make_background, random_colour
from .classes import ACTORS, DISTRACTOR_KINDS, distractor_shape
from .spec import Scene, VideoSpec
from .sprites import Pose, paste_sprite, render_sprite

__all__ = ["Renderer", "render_frames"]

_WORDS = ("EPISODE", "PART", "INTRO", "WELCOME", "HIGHLIGHTS", "DAY", "VLOG", "TUTORIAL", "THE END",
          "SUBSCRIBE", "CHAPTER", "BEHIND THE SCENES", "REPLAY", "LIVE", "SEASON", "MORNING", "TRAILER",
          "CREDITS", "STUDIO", "NEXT", "TODAY", "FINAL", "PREVIEW", "BONUS")


class Renderer:
    """Random-access renderer: ``frame(i)`` -> ``(H, W, 3)`` uint8 RGB."""

    def __init__(self, spec: VideoSpec) -> None:
        self.spec = spec
        w, h = spec.width, spec.height
        self.pad = (max(2, w // 8), max(2, h // 8))  # panning margin on each side
        rng = np.random.default_rng([spec.style_seed, 1])
        self.backgrounds = [make_background(rng, w + 2 * self.pad[0], h + 2 * self.pad[1]) for _ in range(2)]
        self.actor = ACTORS[spec.class_index]
        self.colours = contrasting_pair(rng)
        self.scale = rng.uniform(0.17, 0.28)         # actor radius / frame height
        self.speed = rng.uniform(0.7, 1.4)
        sigma = rng.uniform(1.5, 7.0)                 # camera noise
        self.noise = [rng.normal(0, sigma, (h, w, 3)).astype(np.int16) for _ in range(4)]
        self.cast = []                                # the video's shared distractors
        for _ in range(3):
            kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
            prims, tex = distractor_shape(kind, rng)
            col = random_colour(rng)
            self.cast.append({"prims": prims, "texture": tex, "colours": (col, col * 0.55),
                              "scale": rng.uniform(0.08, 0.3), "opacity": 0.85 if kind == "cloud" else 1.0})
        self.scene_of_frame = np.zeros(spec.num_frames, dtype=np.int64)
        for k, sc in enumerate(spec.scenes):
            self.scene_of_frame[sc.start : sc.end] = k
        self._params: dict[int, dict] = {}

    # ------------------------------------------------------------------ per-scene choices
    def scene_params(self, k: int) -> dict:
        """The random choices of scene ``k`` (background, motions, variant, ...), memoised."""
        if k in self._params:
            return self._params[k]
        sc: Scene = self.spec.scenes[k]
        rng = np.random.default_rng([sc.seed, 2])
        w, h = self.spec.width, self.spec.height
        pan0 = rng.uniform(0, 1, 2)
        p = {
            "bg": int(rng.integers(len(self.backgrounds))),
            "pan0": pan0, "pan1": np.clip(pan0 + rng.normal(0, 0.35, 2), 0, 1),
            "motion": self._motion_params(rng),
            "radius": self.scale * rng.uniform(0.85, 1.15) * h,
            "exposure": rng.uniform(0.85, 1.1),
        }
        n_distractors = {"action": rng.choice(3, p=[0.4, 0.4, 0.2]), "distractors": rng.integers(1, 4),
                         "near_miss": rng.integers(0, 2), "blur": rng.integers(0, 3)}.get(sc.kind, 0)
        chosen = rng.choice(len(self.cast), size=int(n_distractors), replace=False)
        p["distractors"] = [(self.cast[int(c)], self._motion_params(rng), rng.uniform(0.7, 1.3)) for c in chosen]
        if sc.kind == "near_miss":
            p["variant"] = str(rng.choice(["tiny", "edge", "panel", "blur"], p=[0.35, 0.2, 0.25, 0.2]))
            # Any class's actor, whatever the video's class: a near-miss never hints at the label.
            p["actor"] = int(rng.integers(len(ACTORS)))
            p["visible"] = rng.uniform(0.1, 0.25)      # visible fraction of the diameter
            p["side"] = int(rng.choice([-1, 1]))
            p["line"] = rng.uniform(0.3, 0.7) * w       # panel edge (px)
            p["tiny"] = rng.uniform(0.025, 0.05) * h
            panel = np.array(random_colour(rng, sat=(0.0, 0.5), val=(0.15, 0.8)))
            p["panel"] = tuple(int(x) for x in panel)
            p["blur"] = rng.uniform(0.06, 0.09) * h
        elif sc.kind == "blur":
            p["blur"] = rng.uniform(0.02, 0.05) * h
        elif sc.kind == "black":
            p["level"] = float(rng.uniform(0, 14))
        elif sc.kind == "title":
            p["card"] = rng.random() < 0.6
            p["text"] = self._text_layer(rng, p["card"])
        self._params[k] = p
        return p

    def _motion_params(self, rng: np.random.Generator) -> dict:
        return {"x0": rng.uniform(0, 1), "y0": rng.uniform(0, 1), "dir": float(rng.choice([-1.0, 1.0])),
                "speed": self.speed * rng.uniform(0.85, 1.15), "phase0": rng.uniform(0, 2 * math.pi),
                "tilt": rng.uniform(-0.3, 0.3), "vx": rng.uniform(0.03, 0.15), "vy": rng.uniform(0.02, 0.1),
                "spin": rng.uniform(-1.5, 1.5)}

    def _text_layer(self, rng: np.random.Generator, card: bool) -> Image.Image:
        """RGBA text layer: a full card, or a caption band over the scene."""
        w, h = self.spec.width, self.spec.height
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        if card:
            top, bottom = random_colour(rng, val=(0.05, 0.6)), random_colour(rng, val=(0.05, 0.6))
            for y in range(h):
                c = top + (bottom - top) * y / max(1, h - 1)
                d.line([(0, y), (w, y)], fill=(*(int(x) for x in c), 255))
            lines = [" ".join(rng.choice(_WORDS, size=int(rng.integers(1, 3)))) for _ in range(int(rng.integers(1, 4)))]
            y0 = h * rng.uniform(0.2, 0.45)
        else:
            band = h * rng.uniform(0.15, 0.3)
            d.rectangle([0, h - band, w, h], fill=(0, 0, 0, int(rng.uniform(120, 220))))
            lines = [" ".join(rng.choice(_WORDS, size=int(rng.integers(1, 4))))]
            y0 = h - band * 0.8
        size = max(8, int(h * rng.uniform(0.06, 0.12)))
        font = ImageFont.load_default(size=size)
        ink = tuple(int(x) for x in random_colour(rng, sat=(0, 0.4), val=(0.75, 1.0)))
        for k, line in enumerate(lines):
            x = max(2, (w - font.getlength(line)) / 2) if rng.random() < 0.7 else w * 0.06
            d.text((x, y0 + k * size * 1.3), line, font=font, fill=(*ink, 255))
        return layer

    # ------------------------------------------------------------------------- drawing
    def _actor_sprite(self, t: float, p: dict, radius: float, where: str = "box", actor=None):
        actor = actor or self.actor
        mo = actor.motion(t, p["motion"])
        w, h = self.spec.width, self.spec.height
        ext = radius * max(mo.sx, mo.sy) * 1.1
        # The actor stays inside the central square (plus a little), which is what a
        # shorter-side resize + centre crop keeps, so "salient" holds after cropping.
        side = min(w, h + 0.6 * radius) if w > h else w
        mx = (w - side) / 2 + min(side / 2, ext)
        my = min(h / 2, ext)
        cx, cy = mx + mo.x * (w - 2 * mx), my + mo.y * (h - 2 * my)
        if where == "edge":      # mostly below / above the frame, a sliver visible
            vis = 2 * radius * p["visible"]
            cy = vis - radius if p["side"] < 0 else h + radius - vis
        elif where == "panel":   # mostly behind a foreground panel whose edge is p["line"]
            vis = 2 * radius * p["visible"]
            cx = p["line"] - p["side"] * (vis - radius)
        angle = cx / max(radius, 1.0) if actor.name == "rolling_wheel" else mo.angle
        pose = Pose(cx, cy, radius, angle, mo.sx, mo.sy)
        return render_sprite(actor.shape(mo.phase), actor.texture(mo.phase), pose, self.colours, extent=1.35)

    def _draw_distractors(self, img: Image.Image, t: float, p: dict) -> None:
        w, h = self.spec.width, self.spec.height
        for d, m, k in p["distractors"]:
            r = d["scale"] * k * h
            x = 1.0 - abs(((m["x0"] + m["vx"] * m["dir"] * t) % 2.0) - 1.0)
            y = 1.0 - abs(((m["y0"] + m["vy"] * t) % 2.0) - 1.0)
            pose = Pose(r * 0.5 + x * (w - r), r * 0.5 + y * (h - r), r, m["phase0"] + m["spin"] * t)
            paste_sprite(img, render_sprite(d["prims"], d["texture"], pose, d["colours"]), d["opacity"], shadow=0.3)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as ``(H, W, 3)`` uint8 RGB."""
        spec = self.spec
        if not 0 <= i < spec.num_frames:
            raise IndexError(f"frame {i} outside 0..{spec.num_frames - 1}")
        k = int(self.scene_of_frame[i])
        sc = spec.scenes[k]
        p = self.scene_params(k)
        t = (i - sc.start) / spec.fps
        w, h = spec.width, spec.height
        if sc.kind == "black":
            arr = np.full((h, w, 3), p["level"], dtype=np.float32)
        else:
            prog = (i - sc.start) / max(1, sc.end - sc.start - 1)
            ox, oy = (p["pan0"] + (p["pan1"] - p["pan0"]) * prog) * 2 * np.array(self.pad)
            ox, oy = int(round(ox)), int(round(oy))
            img = Image.fromarray(self.backgrounds[p["bg"]][oy : oy + h, ox : ox + w])
            if sc.kind != "title" or not p["card"]:
                self._draw_distractors(img, t, p)
            if sc.kind == "action":
                paste_sprite(img, self._actor_sprite(t, p, p["radius"]), shadow=0.35)
            elif sc.kind == "near_miss":
                v = p["variant"]
                radius = p["tiny"] if v == "tiny" else p["radius"]
                paste_sprite(img, self._actor_sprite(t, p, radius, where=v if v in ("edge", "panel") else "box",
                                                     actor=ACTORS[p["actor"]]), shadow=0.35)
                if v == "panel":
                    x = int(round(p["line"]))
                    img.paste(p["panel"], (x, 0, w, h) if p["side"] > 0 else (0, 0, x, h))
            if sc.kind == "title":
                img.paste(p["text"], (0, 0), p["text"])
            if sc.kind == "blur" or (sc.kind == "near_miss" and p["variant"] == "blur"):
                blur = ImageFilter.BoxBlur(p["blur"])
                img = img.filter(blur).filter(blur)
            arr = np.asarray(img)
        gain = p["exposure"] if sc.kind != "black" else 1.0
        pos = i - sc.start
        if sc.fade_in and pos < sc.fade_in:
            gain *= (pos + 1) / (sc.fade_in + 1)
        if sc.fade_out and sc.end - 1 - pos < sc.fade_out:
            gain *= (sc.end - pos) / (sc.fade_out + 1)
        out = arr.astype(np.float32) * gain if gain != 1.0 else arr.astype(np.int16)
        out = out + self.noise[i % len(self.noise)]
        return np.clip(out, 0, 255).astype(np.uint8)

    def frames(self):
        """Yield every frame in order, ``(H, W, 3)`` uint8."""
        for i in range(self.spec.num_frames):
            yield self.frame(i)


def render_frames(spec: VideoSpec) -> np.ndarray:
    """All frames of ``spec`` as one ``(N, H, W, 3)`` uint8 array (small videos only)."""
    return np.stack(list(Renderer(spec).frames()))

"""Resource ceilings of the library, in one place (the app adds its own on top: app/server/settings.py).

Each is generous for real videos and models, and small enough that one hostile file or
config cannot take the process past a few GB. Values can be lowered per call where a
function takes them as arguments; the README ("Limits") lists them with the app's.
"""
from __future__ import annotations

__all__ = ["MAX_FRAMES", "MAX_ASPECT_RATIO", "MAX_SOURCE_PIXELS", "MAX_DECODE_PIXELS", "MAX_GIF_PIXELS"]

#: Largest T (previews per video) anywhere: library, CLI and app. K is bounded by T.
MAX_FRAMES = 256

#: Widest aspect ratio (long side / short side, after rotation) accepted as a video.
MAX_ASPECT_RATIO = 16.0

#: Largest declared picture (width x height) of a stream: 8K UHD with room to spare.
MAX_SOURCE_PIXELS = 8192 * 8192

#: Largest decoded output frame (width x height) a caller may ask for (``size=None`` keeps the
#: display size and is bounded by this too).
MAX_DECODE_PIXELS = 7680 * 4320

#: Budget of an animated GIF's declared canvas times its frame count (GIFs decode every frame).
MAX_GIF_PIXELS = 2_000_000_000

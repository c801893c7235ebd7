"""The ``VideoError`` family: what bad input raises, one line ``"<path>: <problem>"`` each."""
from __future__ import annotations

import os

__all__ = [
    "VideoError", "VideoNotFoundError", "EmptyVideoError", "NotAVideoError", "NoVideoStreamError",
    "StillImageError", "TruncatedVideoError", "UnsupportedCodecError", "NoDecodableFramesError",
    "CorruptVideoError", "DecodeTimeoutError", "UnsupportedGeometryError", "Cancelled",
]


class VideoError(Exception):
    """A file that cannot be used as a video. ``str(err)`` is ``"<path>: <problem>"``, one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(problem.split())   # one line, whatever the caller passed
        super().__init__(f"{self.path}: {self.problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class EmptyVideoError(VideoError):
    """The file has 0 bytes."""


class NotAVideoError(VideoError):
    """The bytes are not a container FFmpeg recognises."""


class NoVideoStreamError(VideoError):
    """A valid media file without a video track (audio only, or just cover art)."""


class StillImageError(VideoError):
    """A single picture (PNG, JPEG, ...), not a video."""


class TruncatedVideoError(VideoError):
    """The file ends early: an incomplete upload or copy."""


class UnsupportedCodecError(VideoError):
    """This FFmpeg build has no decoder for the video codec."""


class NoDecodableFramesError(VideoError):
    """There is a video track but not a single frame decodes."""


class CorruptVideoError(VideoError):
    """Too damaged to sample faithfully: too many damaged frames, or data and metadata no decoder accepts."""


class DecodeTimeoutError(VideoError):
    """Decoding ran past the time budget."""


class UnsupportedGeometryError(VideoError):
    """Picture dimensions outside ``nsnet.limits``: an absurd aspect ratio or too many pixels to decode."""


class Cancelled(VideoError):
    """A parallel worker stopped because another one failed (never leaves ``nsnet.video``)."""

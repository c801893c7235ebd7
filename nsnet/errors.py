"""Error text shared by the library, the CLI and the app: one plain line a problem."""
from __future__ import annotations

__all__ = ["one_line"]


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An error (or text) as one whitespace-collapsed line of at most ``limit`` characters.

    An exception without a message gives its type name, so the result is never empty.
    """
    text = " ".join(str(err).split()) or (type(err).__name__ if isinstance(err, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 1] + "…"

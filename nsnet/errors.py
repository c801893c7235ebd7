"""Error text shared by the library, the CLI and the app: one plain line a problem."""
from __future__ import annotations

__all__ = ["one_line", "shown"]


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An error (or text) as one whitespace-collapsed line of at most ``limit`` characters.

    An exception without a message gives its type name, so the result is never empty.
    """
    text = " ".join(str(err).split()) or (type(err).__name__ if isinstance(err, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value) -> str:
    """``value`` echoed short for an error message (at most about 40 characters): ``1e+308``, never
    309 digits; a string cut and quoted; other objects by their type (``a list``)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        digits = str(abs(value)) if abs(value) < 10 ** 30 else None
        if digits is not None and len(digits) <= 15:
            return str(value)
        try:
            return f"{float(value):.3g}"
        except OverflowError:
            return f"a {len(str(abs(value))) if abs(value) < 10 ** 4000 else 'huge'}-digit number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 30 else repr(value[:29]) + "…"
    return f"a {type(value).__name__}"

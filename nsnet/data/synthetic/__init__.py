"""The synthetic untrimmed-video benchmark (``python -m nsnet make-synthetic``).

Modules, one job each: :mod:`.spec` samples what a video contains (cheap, no pixels),
:mod:`.classes` defines the action actors and shared distractors, :mod:`.backgrounds`
the locations, :mod:`.render` draws frames, :mod:`.encode` writes MP4s atomically,
:mod:`.contact_sheet` draws the overview image, and :mod:`.generate` is the CLI.
"""
from .classes import CLASS_NAMES
from .spec import SynthConfig, VideoSpec, sample_spec

__all__ = ["CLASS_NAMES", "SynthConfig", "VideoSpec", "sample_spec", "main"]

# The generator itself is ``nsnet.data.synthetic.generate.generate`` (a function of the submodule;
# a same-named wrapper here would be shadowed by the submodule once it is imported).


def main(argv: list[str] | None = None) -> int:
    """``python -m nsnet make-synthetic`` entry point (see :mod:`.generate`)."""
    from .generate import main as _main

    return _main(argv)

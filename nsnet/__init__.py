"""NSNet: Non-saliency Suppression Sampler for efficient video recognition.

The library never imports gradio; ``app/`` builds on it, never the reverse.
"""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

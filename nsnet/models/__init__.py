"""Backbones, sampler and recognizer."""

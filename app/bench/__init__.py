"""Latency benchmarks of the page (not tests): ``python -m app.bench`` (a Run: first and full result, K/λ)
and ``python -m app.bench.dataset`` (dataset mode, two checkpoints). No runtime module imports them."""

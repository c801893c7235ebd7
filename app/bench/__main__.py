"""``python -m app.bench``: the explorer's latency benchmark (``app.bench.page``)."""
import sys

from .page import main

sys.exit(main())

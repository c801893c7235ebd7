"""Hub backbones on a machine without the Hub: an answer in seconds, not after minutes of retries.

``hf:<id>`` and ``clip:<id>`` load through transformers, whose Hub client retries an
unreachable endpoint for about half a minute per file before it says the file is not
cached. :func:`hub_access` decides first, without transformers:

* a local folder, or ``local_files_only=True``: nothing to decide;
* the Hub is reachable (``HF_HUB_OFFLINE`` unset and a TCP connection to ``HF_ENDPOINT``, or
  to the proxy that reaches it, opens within :data:`PROBE_TIMEOUT_S`): load as usual;
* otherwise the model's ``config.json`` is in the Hugging Face cache: load from the cache
  only (``local_files_only=True``);
* otherwise: :class:`~nsnet.models.backbones.base.MissingWeightsError`, one line naming the
  model and ``HF_HUB_OFFLINE`` (never a local path: a page may show it).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from nsnet.models.backbones.base import MissingWeightsError

__all__ = ["PROBE_TIMEOUT_S", "hub_access", "hub_reachable", "hub_offline", "in_hub_cache"]

log = logging.getLogger(__name__)

#: how long the reachability probe waits for a TCP connection (name resolution included)
PROBE_TIMEOUT_S = 3.0
#: a probe's answer is reused for this long (a run builds two backbones)
_PROBE_TTL_S = 60.0
_probes: dict[tuple[str, int], tuple[float, bool]] = {}
_TRUE = ("1", "ON", "YES", "TRUE")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, now or when huggingface_hub was imported."""
    if any(os.environ.get(v, "").strip().upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _target(url: str) -> tuple[str, int] | None:
    """(host, port) a connection to ``url`` opens first: its proxy's, when one applies."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            return p.hostname, p.port or (443 if p.scheme == "https" else 80)
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def hub_reachable(url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub endpoint ``url`` (default ``HF_ENDPOINT``) opens within
    ``timeout`` seconds, name resolution included (it runs in a thread that is not waited for)."""
    target = _target(url or _endpoint())
    if target is None:
        return False
    now = time.monotonic()
    cached = _probes.get(target)
    if cached is not None and now - cached[0] < _PROBE_TTL_S:
        return cached[1]
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(target, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="nsnet-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    ok = bool(result and result[0])
    _probes[target] = (time.monotonic(), ok)
    return ok


def in_hub_cache(repo_id: str, hub: dict[str, Any]) -> bool | None:
    """Whether ``repo_id``'s ``config.json`` is in the Hugging Face cache (None: not a Hub id)."""
    from huggingface_hub import try_to_load_from_cache

    name = "/".join(p for p in (hub.get("subfolder"), "config.json") if p)
    try:
        found = try_to_load_from_cache(repo_id, name, cache_dir=hub.get("cache_dir"), revision=hub.get("revision"))
    except Exception:  # not a valid repo id: transformers says what it is
        return None
    return isinstance(found, str)


def hub_access(family: str, source: str, hub: dict[str, Any]) -> dict[str, Any]:
    """The Hub keyword arguments to build ``family + source`` with (see the module docstring).

    Raises:
        MissingWeightsError: the Hub cannot be reached (or ``HF_HUB_OFFLINE``) and the model is
            not in the cache.
    """
    if os.path.isdir(source) or hub.get("local_files_only"):
        return hub
    offline = hub_offline()
    if not offline and hub_reachable():
        return hub
    cached = in_hub_cache(source, hub)
    if cached is None:
        return hub
    if cached:
        if not offline:
            log.info("%s%s: the Hugging Face Hub (%s) cannot be reached; using the cached copy", family, source,
                     _endpoint())
        return {**hub, "local_files_only": True}
    where = "the cache_dir given" if hub.get("cache_dir") else "this machine's Hugging Face cache (HF_HUB_CACHE)"
    why = ("HF_HUB_OFFLINE is set" if offline else
           f"the Hub ({_endpoint()}) cannot be reached (set HF_HUB_OFFLINE=1 to skip this {PROBE_TIMEOUT_S:g}-s check)")
    raise MissingWeightsError(f"{family}{source} is not in {where} and {why}: download it "
                              f"once where the Hub can be reached (hf download {source}), or give a folder "
                              f"({family}/path/to/model)")

"""Minimal DistributedDataParallel plumbing for ``torchrun``.

Under ``torchrun --nproc_per_node N`` the usual environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT) is set; ``init()`` joins the process group with
gloo on CPU or nccl on GPU. Without it everything runs in one process.

Collectives wait :func:`collective_timeout_s` (7 days unless ``$NSNET_DIST_TIMEOUT_S`` says
otherwise) instead of NCCL's 10 minutes: ``analyze`` and ``train`` both put a barrier after each
rank's shard of decoding and feature caching, and ranks finish those at different times (a
resume with part of the cache present can leave one rank hours behind another).

Only rank 0 narrates: ``init()`` raises every other rank's log level to WARNING and
prefixes its lines with ``[rank N]``, so a job log holds one copy of each progress line
and every rank's warnings and errors, attributed.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .config import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


#: How long collectives wait for the slowest rank by default (torch's NCCL default is 10 minutes).
DEFAULT_TIMEOUT_S = 7 * 24 * 3600.0
#: The environment variable that overrides it (seconds, 60 .. 30 days).
TIMEOUT_ENV = "NSNET_DIST_TIMEOUT_S"
_TIMEOUT_RANGE = (60.0, 30 * 24 * 3600.0)


def collective_timeout_s() -> float:
    """``$NSNET_DIST_TIMEOUT_S`` (seconds), else :data:`DEFAULT_TIMEOUT_S`.

    Raises:
        ConfigError: a value that is not a number in 60 .. 2592000 (one line naming the variable).
    """
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    low, high = _TIMEOUT_RANGE
    if not low <= value <= high:  # nan fails too
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds in {low:.0f}..{high:.0f}, got {raw[:40]!r}")
    return value


def init(device: torch.device, timeout_s: float | None = None) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op otherwise.

    ``timeout_s`` bounds collectives such as :func:`barrier` (default: :func:`collective_timeout_s`,
    long: ranks finish their shards of decoding and caching at different times).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = collective_timeout_s() if timeout_s is None else float(timeout_s)
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout))
        if dist.get_rank() == 0:
            log.info("joined process group: %d processes (%s), master %s:%s", world, backend,
                     os.environ.get("MASTER_ADDR", "?"), os.environ.get("MASTER_PORT", "?"))
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    quiet_other_ranks(info)
    return info


_PREFIXED = False


def quiet_other_ranks(info: DistInfo) -> None:
    """On ranks other than 0: log warnings and errors only, each line prefixed with ``[rank N]``."""
    global _PREFIXED
    if info.is_main or _PREFIXED:
        return
    root = logging.getLogger()
    root.setLevel(max(root.level, logging.WARNING))
    for name in list(logging.root.manager.loggerDict):  # loggers given their own level (e.g. by a library)
        logger = logging.getLogger(name)
        if logger.level and logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    make_record, prefix = logging.getLogRecordFactory(), f"[rank {info.rank}] "

    def with_rank(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg = prefix + str(record.msg)
        return record

    logging.setLogRecordFactory(with_rank)
    _PREFIXED = True


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Mean of a Python float over ranks (for logging a loss every rank agrees on)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def all_gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without DDP."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Every rank takes rank 0's buffers (e.g. BatchNorm statistics, which DDP leaves per rank)."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""Training: the three-stage recipe, its config, losses and pseudo labels.

* :mod:`.config`        -- :class:`TrainConfig` (nests the :class:`~nsnet.config.PipelineConfig`).
* :mod:`.trainer`       -- :func:`run` / :func:`train`, the stages and :class:`Trainer` (DDP, accumulation).
* :mod:`.modules`       -- stage inputs (cached features, previews) and modules; frame chunks, bf16, augmentation.
* :mod:`.state`         -- the resumable state: when it is written, what a resume may change.
* :mod:`.batches`       -- which videos each process trains on, with what weight and random draws
                          (N processes train as one).
* :mod:`.interrupt`     -- Ctrl-C: save the state after the current optimiser step, then stop.
* :mod:`.monitor`       -- progress lines, the validation metric and the best checkpoint.
* :mod:`.losses`        -- ``L_frame + alpha L_sal + beta L_non``.
* :mod:`.pseudo_labels` -- frame targets from the frozen teacher.
"""
from .config import TrainConfig
from .trainer import Trainer, TrainResult, run, train

__all__ = ["TrainConfig", "Trainer", "TrainResult", "run", "train"]

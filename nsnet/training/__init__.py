"""Training: the three-stage recipe, its config, losses and pseudo labels.

* :mod:`.config`        -- :class:`TrainConfig` (nests the :class:`~nsnet.config.PipelineConfig`).
* :mod:`.trainer`       -- :func:`run` / :func:`train`, the stages and :class:`Trainer` (DDP, resume).
* :mod:`.losses`        -- ``L_frame + alpha L_sal + beta L_non``.
* :mod:`.pseudo_labels` -- frame targets from the frozen teacher.
"""
from .config import TrainConfig
from .trainer import Trainer, TrainResult, run, train

__all__ = ["TrainConfig", "Trainer", "TrainResult", "run", "train"]

"""The open design choices of the method (docs/method.md), measured on a benchmark; ``nsnet ablate`` runs it.

The recognizer is trained once (stage 1); every variant then re-initialises and trains
only the sampler (stages 2-3) on cached features, over several seeds, and is scored on
the validation subset at the same K. Variants: pseudo-label rule, sigmoid gates vs
softmax attention, background vs uniform-KL non-salient loss, no non-salient loss, and
the fusion weight lam (a re-ranking of the default model, no training).
"""
from __future__ import annotations

import dataclasses
import logging
import statistics

import torch

from ..data.features import build_feature_set, load_records
from ..distributed import DistInfo
from ..inference import Pipeline
from ..models.sampler import NSNetSampler
from ..training import TrainConfig, Trainer
from ..training.trainer import teacher_pseudo_labels, train_recognizer, train_sampler
from .evaluate import evaluate, frame_outputs

__all__ = ["VARIANTS", "LAMS", "run", "markdown"]

log = logging.getLogger(__name__)

VARIANTS: dict[str, dict] = {
    "default": {},
    "pseudo: relative (gamma=0.8)": {"pseudo_rule": "relative"},
    "pseudo: threshold (tau=0.5)": {"pseudo_rule": "threshold"},
    "pseudo: topk (rho=0.25)": {"pseudo_rule": "topk"},
    "pseudo: soft": {"pseudo_rule": "soft"},
    "attention: softmax": {"sampler.attention": "softmax"},
    "L_non: background class": {"non_mode": "background"},
    "L_non: uniform KL": {"non_mode": "uniform"},
    "no L_non (beta=0)": {"beta": 0.0},
    "sampler at 128 px": {"sampler.input_size": 128},
}
LAMS = (0.0, 0.25, 0.5, 0.75, 1.0)
COLUMNS = ("nsnet", "frame_only", "attention_only", "uniform", "dense")


def _sampler_variant(pipe: Pipeline, cfg: TrainConfig, seed: int) -> Pipeline:
    """A fresh sampler head for ``cfg`` on the same frozen backbone and trained recognizer."""
    sampler_cfg = dataclasses.replace(cfg.pipeline_config(pipe.class_names).sampler, num_classes=len(pipe.class_names))
    config = dataclasses.replace(pipe.config, sampler=sampler_cfg)
    torch.manual_seed(seed)
    sampler = NSNetSampler(config.sampler, pipe.sampler.backbone)
    return Pipeline(config, sampler, pipe.recognizer, pipe.device)


def run(base: TrainConfig, val_subset: str, seeds: list[int]) -> dict:
    records, class_names = load_records(base.data, base.subset, video_root=base.video_root)
    val_records, _ = load_records(base.data, val_subset, video_root=base.video_root)
    torch.manual_seed(base.seed)
    pipe = Pipeline.build(base.pipeline_config(class_names), device=base.device)
    t = base.pipeline.num_frames
    train_fs = build_feature_set(records, class_names, pipe, t, base.cache_path, progress=base.progress)
    val_fs = build_feature_set(val_records, class_names, pipe, t, base.cache_path, progress=base.progress)
    train_recognizer(Trainer(base, pipe, DistInfo()), train_fs.recognizer, train_fs.labels, None)
    results: dict[str, dict] = {}
    for name, change in VARIANTS.items():
        cfg = base.replace(**change)
        tr, va = train_fs, val_fs
        if cfg.pipeline.sampler.input_size != base.pipeline.sampler.input_size:  # its own features
            probe = _sampler_variant(pipe, cfg, base.seed)
            tr = build_feature_set(records, class_names, probe, t, cfg.cache_path, progress=cfg.progress)
            va = build_feature_set(val_records, class_names, probe, t, cfg.cache_path, progress=cfg.progress)
        runs = []
        for seed in seeds:
            variant = _sampler_variant(pipe, cfg, seed)
            trainer = Trainer(cfg.replace(seed=seed), variant, DistInfo())
            pseudo = teacher_pseudo_labels(variant, tr.recognizer, tr.labels, cfg)
            train_sampler(trainer, tr.sampler, tr.labels, pseudo, None)
            variant.config.meta = {"train": cfg.to_dict()}
            out = frame_outputs(variant, va)
            runs.append({"eval": evaluate(variant, va, outputs=out),
                         "lam": {lam: evaluate(variant, va, lam=lam, outputs=out)["methods"]["nsnet"]["map"]
                                 for lam in LAMS} if name == "default" else None})
        results[name] = _summarise(runs)
        results[name]["gflops_nsnet"] = runs[0]["eval"]["methods"]["nsnet"]["gflops"]
        log.info("%s: NSNet mAP %.1f", name, 100 * results[name]["map"]["nsnet"])
    return {"t": t, "k": base.pipeline.k, "seeds": seeds, "num_train": len(train_fs),
            "num_val": len(val_fs), "variants": results}


def _summarise(runs: list[dict]) -> dict:
    mean = lambda xs: statistics.fmean(x for x in xs if x is not None) if any(x is not None for x in xs) else None
    evals = [r["eval"] for r in runs]
    out = {"map": {m: mean([e["methods"][m]["map"] for e in evals]) for m in COLUMNS},
           "map_std_nsnet": statistics.pstdev([e["methods"]["nsnet"]["map"] for e in evals]),
           "saliency_ap": mean([e["saliency_ap"] for e in evals]),
           "pseudo_precision": mean([(e["pseudo_labels"] or {}).get("precision") for e in evals]),
           "pseudo_recall": mean([(e["pseudo_labels"] or {}).get("recall") for e in evals])}
    if runs[0]["lam"] is not None:
        out["lam"] = {str(lam): mean([r["lam"][lam] for r in runs]) for lam in LAMS}
    return out


def markdown(res: dict) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}"
    lines = [f"T={res['t']}, K={res['k']}; {res['num_train']} training / {res['num_val']} validation videos; "
             f"mean of seeds {res['seeds']}", "",
             "| variant | NSNet mAP | frame-only | attention-only | saliency AP | pseudo P / R | GFLOPs |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in res["variants"].items():
        m = v["map"]
        lines.append(f"| {name} | {pct(m['nsnet'])} ± {100 * v['map_std_nsnet']:.1f} | {pct(m['frame_only'])} | "
                     f"{pct(m['attention_only'])} | {pct(v['saliency_ap'])} | "
                     f"{pct(v['pseudo_precision'])} / {pct(v['pseudo_recall'])} | {v['gflops_nsnet']:.2f} |")
    d = res["variants"]["default"]
    lines += ["", f"Reference at K={res['k']}: uniform {pct(d['map']['uniform'])}, dense-T {pct(d['map']['dense'])}.",
              "", "| lam | " + " | ".join(d["lam"]) + " |", "|---|" + "---:|" * len(d["lam"]),
              "| NSNet mAP | " + " | ".join(pct(v) for v in d["lam"].values()) + " |"]
    return "\n".join(lines) + "\n"

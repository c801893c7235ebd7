"""Distributed training equals one process at the same global batch and seed (nsnet.training.batches):
same sample order, gradients averaged over the step's videos, the same random draws per video.

The two-process runs use gloo on the CPU (``torch.multiprocessing.spawn``) on a tiny benchmark.
Before this contract, 2 processes at batch 2 ended 0.053 away from 1 process at batch 4 (6 epochs
each; dropout masks drawn per process, the last batch padded with a repeated video and averaged
per process); now the difference is float noise (~1e-5).
"""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from nsnet.data.synthetic import main as make_synthetic
from nsnet.training import TrainConfig, trainer
from nsnet.training.batches import KeyedDropout, epoch_batches, video_keys
from nsnet.training.modules import augment_clips

TINY = dict(sampler_backbone="efficientnet_lite0", recognizer_backbone="efficientnet_lite0",
            backbones_pretrained=False, sampler_size=64, recognizer_size=64, hidden_dim=32,
            num_frames=6, k=2, recognizer_epochs=3, sampler_epochs=3, lr=5e-3, progress=False,
            pseudo_rule="topk", rho=0.5, val_subset="none", save_state=False, device="cpu")
# dropout stays on (sampler 0.1, recognizer 0.2 by default): its masks must match too


# --------------------------------------------------------------------------- the pieces
def test_every_step_trains_the_same_videos_as_one_process_with_nothing_repeated():
    n, b, w, a = 7, 2, 2, 1
    one = epoch_batches(n, 3, 0, b * w, a)
    ranks = [epoch_batches(n, 3, 0, b, a, rank=r, world_size=w) for r in range(w)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 2          # ceil(7 / 4) steps for everyone
    expected = torch.randperm(n, generator=torch.Generator().manual_seed(3))  # the order of one process
    assert torch.equal(torch.cat([idx for group in one for idx, _ in group]), expected)
    for step in range(2):
        (whole, weight), = one[step]
        parts = [ranks[r][step][0] for r in range(w)]
        real = [idx for idx, wt in parts if wt > 0]
        assert sorted(torch.cat(real).tolist()) == sorted(whole.tolist())  # the same videos, none twice
        # each video's gradient counts wt / (its batch's size x W) after DDP's mean over processes:
        # 1 / (the step's videos), as in one process
        for idx, wt in parts:
            assert wt / (len(idx) * w) == pytest.approx(weight / len(whole))
    # the last step has 3 videos: 2 on rank 0, 1 on rank 1, each weighted by its share
    assert [(len(idx), wt) for idx, wt in (ranks[0][1][0], ranks[1][1][0])] == [(2, 2 * 2 / 3), (1, 1 * 2 / 3)]


def test_a_process_without_a_video_takes_a_weightless_stand_in_pass():
    ranks = [epoch_batches(3, 0, 0, 1, 2, rank=r, world_size=2) for r in range(2)]  # micro-batches of 2, 2 a step
    assert [len(g) for g in ranks[0]] == [2] == [len(g) for g in ranks[1]]
    (_, w0), (last0, w0b) = ranks[0][0]
    (_, w1), (last1, w1b) = ranks[1][0]
    assert (w0, w1) == (2 / 3, 2 / 3) and w0b == 2 / 3 and w1b == 0.0  # rank 1 has no video in the 3rd
    assert len(last1) == 1 and torch.equal(last1, last0)                 # ... and reruns rank 0's at weight 0


def test_dropout_and_augmentation_draws_belong_to_the_video_not_the_batch():
    layer = nn.Sequential(nn.Dropout(0.5)).train()
    kd = KeyedDropout(layer)
    x = torch.ones(3, 4, 8)                                    # (B, T, d)
    keys = video_keys(0, "sampler", 2, torch.tensor([5, 9, 1]))
    with kd.keyed(keys):
        batch = layer(x)
    with kd.keyed(keys[1:2]):
        alone = layer(x[1:2])
    assert torch.equal(batch[1], alone[0])                     # video 9's mask, whatever its batch
    assert not torch.equal(batch[0], batch[1])                 # another video, another mask
    assert set(batch.unique().tolist()) == {0.0, 2.0}          # inverted dropout at p = 0.5
    flat = torch.ones(3 * 4, 8)                                # (B*T, D): rows video-major, as the recognizer
    with kd.keyed(keys):
        assert torch.equal(layer(flat).view(3, 4, 8), batch)
    assert torch.equal(layer.eval()(x), x)                     # eval: no dropout, keyed or not

    frames = torch.randint(0, 255, (3, 2, 16, 16, 3), dtype=torch.uint8)
    together = augment_clips(frames, keys=keys)
    assert torch.equal(augment_clips(frames[2:], keys=keys[2:])[0], together[2])


# --------------------------------------------------------------------------- two processes, gloo
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    assert make_synthetic([str(out), "--videos", "10", "--seed", "3", "--classes", "3", "--size", "96x72"]) == 0
    return out  # 7 training videos: the global batch of 4 leaves a short last batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg_dict: dict, out_dir: str) -> None:
    from safetensors.torch import save_file

    from nsnet import distributed as dist_utils

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = dist_utils.init(torch.device("cpu"))
    try:
        result = trainer.train(TrainConfig.from_dict(cfg_dict), info)
        state = result.pipeline.trained_state_dict()
        state["history.sampler"] = torch.tensor(result.history["sampler"], dtype=torch.float64)
        save_file(state, os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist_utils.shutdown(info)


@pytest.fixture
def one_thread():
    """One intra-op thread (what each spawned rank uses), restored afterwards: no other test inherits it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("per_rank, accum", [(2, 1), (1, 2)])
def test_two_gloo_processes_end_with_the_weights_of_one(tiny_data, tmp_path, per_rank, accum, one_thread):
    """(2, 1): 2 processes at batch 2 = 1 process at batch 4 (an uneven last batch: 2 + 1 videos);
    (1, 2): batch 1 with 2 accumulation passes = batch 2 with 2 (one pass with a stand-in)."""
    from safetensors.torch import load_file

    common = dict(TINY, data=str(tiny_data), cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "ckpt"),
                  grad_accum=accum)
    one = trainer.train(TrainConfig.from_dict(dict(common, batch_size=2 * per_rank)))  # fills the feature cache
    mp.spawn(_worker, args=(2, _free_port(), dict(common, batch_size=per_rank), str(tmp_path)), nprocs=2, join=True)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    single = one.pipeline.trained_state_dict()
    assert ranks[0].keys() == set(single) | {"history.sampler"}
    worst = max(float((ranks[0][k] - single[k]).abs().max()) for k in single)
    assert worst < 1e-4, worst                                  # float noise (before: 0.05)
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key   # and the ranks agree exactly
    torch.testing.assert_close(ranks[0]["history.sampler"].tolist(), one.history["sampler"], rtol=1e-5, atol=1e-6)
    head = "recognizer.head.1.weight"
    torch.manual_seed(0)
    init = trainer.Pipeline.build(TrainConfig.from_dict(common).pipeline_config(["a", "b", "c"]), device="cpu")
    assert float((init.trained_state_dict()[head] - single[head]).abs().max()) > 1e-3  # it did train

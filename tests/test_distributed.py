"""Distributed training on CPU (gloo): torchrun end to end, and the global-batch contrastive objective."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from coala.models.checkpoints import load_checkpoint
from coala.train.step import DualAE, Objective, all_gather_with_grad, train_step
from models_t1000 import AudioEncoder, TagDecoder
from tiny_release import paper_config, write_config, write_corpus

# Both tests start processes (torchrun, multiprocessing) and train: slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_TAGS = 50
OBJECTIVE = Objective(5.0, 5.0, 10.0, temperature=0.1)


def _gradients(model: DualAE) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _worker(rank: int, world_size: int, init_file: str, state: dict, x: torch.Tensor, tags: torch.Tensor, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    model = DualAE(N_TAGS)
    model.load_state_dict(state)
    model.eval()  # BatchNorm on running statistics: only the contrastive negatives couple the processes
    ddp = DistributedDataParallel(model)
    optimizers = [torch.optim.SGD(group, lr=0.0) for group in model.parameter_groups()]
    rows = slice(rank * len(x) // world_size, (rank + 1) * len(x) // world_size)
    train_step(ddp, optimizers, OBJECTIVE, x[rows], tags[rows], gather=all_gather_with_grad)
    if rank == 0:
        torch.save(_gradients(model), out)
    del ddp  # DDP's reducer must go before its process group: freed after it, it intermittently hung the worker
    dist.destroy_process_group()


def test_two_processes_of_batch_b_optimise_one_process_of_batch_2b(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DualAE(N_TAGS).eval()
    x = torch.rand(8, 1, 96, 96)
    tags = (torch.rand(8, N_TAGS) < 0.1).float()
    state = model.state_dict()
    optimizers = [torch.optim.SGD(group, lr=0.0) for group in model.parameter_groups()]
    train_step(model, optimizers, OBJECTIVE, x, tags)
    expected = _gradients(model)
    out = tmp_path / "grads.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), state, x, tags, str(out)), nprocs=2, join=True)
    gathered = torch.load(out, weights_only=True)
    for name, grad in expected.items():
        torch.testing.assert_close(gathered[name], grad, rtol=2e-4, atol=1e-6, msg=name)


def test_torchrun_two_cpu_processes_train_and_checkpoint(tmp_path: Path) -> None:
    write_corpus(tmp_path, n_train=9, n_val=4, n_tags=N_TAGS)  # 2 processes x batch 2: 2 steps, 1 patch dropped
    config = paper_config(tmp_path, "ddp", epochs=1, batch_size=2, checkpoint_dir=str(tmp_path / "ckpt"),
                          log_dir=str(tmp_path / "runs"))
    path = write_config(tmp_path / "ddp.json", config)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(ROOT / "train_dual_ae.py"), str(path)], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 process(es) on cpu" in result.stderr
    load_checkpoint(tmp_path / "ckpt" / "ddp" / "audio_encoder_epoch_1.pt", AudioEncoder)
    assert load_checkpoint(tmp_path / "ckpt" / "ddp" / "tag_decoder_epoch_1.pt", TagDecoder).tag_decoder[7].out_features == N_TAGS
    metrics = [json.loads(line) for line in (tmp_path / "runs" / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1]

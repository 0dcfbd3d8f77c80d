"""One process or many: the same training code runs alone or under `torchrun --nproc_per_node=N`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; with WORLD_SIZE > 1 the process group is initialized (nccl on GPUs,
gloo on the CPU) and the model is wrapped in DistributedDataParallel by the training loop. Only rank 0 writes
outputs and talks to MLflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def setup(device: str | None = None) -> Context:
    """Read torchrun's environment, pick the device, start the process group; on the CPU set the threads and
    deterministic algorithms.

    Args:
        device: 'cpu' or 'cuda' to force one; None picks CUDA when present.
    """
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        # speed first on GPUs: cuDNN picks the fastest kernels, so runs are seeded but not bit-exact there
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        torch.backends.cudnn.benchmark = True
    else:
        dev = torch.device("cpu")
        if "OMP_NUM_THREADS" not in os.environ:  # torchrun sets it; alone, share the cores between local ranks
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
            torch.set_num_threads(max(1, _cpu_count() // local_world))
        torch.use_deterministic_algorithms(True)  # bit-exact reruns and resumes on the CPU
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size,
                                device_id=dev if use_cuda else None)
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def all_sum(values: list[float], ctx: Context) -> list[float]:
    """Element-wise sum of `values` over all ranks (the values themselves when alone)."""
    if not ctx.distributed:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def sync_buffers(model: nn.Module, ctx: Context) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics, updated by each rank's last batch) to every rank."""
    if ctx.distributed:
        for b in model.buffers():
            dist.broadcast(b, src=0)


def parameter_checksum(model: nn.Module) -> torch.Tensor:
    """(P, 2) float64: sum and sum of squares of each parameter tensor; equal replicas give equal checksums."""
    rows = [torch.stack([p.detach().double().sum(), p.detach().double().pow(2).sum()]) for p in model.parameters()]
    return torch.stack(rows)


def replicas_in_sync(model: nn.Module, ctx: Context) -> bool:
    """Whether every rank holds exactly the same parameters (all_gather of checksums, compared bit for bit)."""
    local = parameter_checksum(model).to(ctx.device)
    if not ctx.distributed:
        return True
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])

"""
Distributed training (DDP) plumbing: the process group, barriers and collective checks.

``neural-ae train`` under torchrun (``WORLD_SIZE > 1``) joins an ``env://`` process
group: gloo on the CPU, nccl on CUDA. Every helper here also works in a single process
(``DistInfo.initialised`` False), where it reduces to the local value.
"""
import math
import os

from neural_ae.core.errors import ConfigError
import torch
import torch.distributed as dist


class DistInfo:
    """Rank, world size and device of this process."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0,
                 device: torch.device = torch.device('cpu'), initialised: bool = False):
        """Describe a process: ``initialised`` when it joined a process group."""
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.device = device
        self.initialised = initialised

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that logs, evaluates and writes)."""
        return self.rank == 0


def init_distributed(device: str = 'auto') -> DistInfo:
    """
    Join the process group when ``WORLD_SIZE > 1`` (``env://``, as set by torchrun).

    Backend: nccl when the device is CUDA, gloo otherwise.
    """
    world = int(os.environ.get('WORLD_SIZE', '1'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = (device == 'cuda' or (device == 'auto' and torch.cuda.is_available()))
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError('train config: device cuda requested but CUDA is not available')
    if use_cuda:
        dev = torch.device('cuda', local_rank if world > 1 else 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device('cpu')
    if world <= 1:
        return DistInfo(0, 1, 0, dev)
    if not dist.is_initialized():
        dist.init_process_group('nccl' if use_cuda else 'gloo', init_method='env://')
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)


def shutdown(info: DistInfo) -> None:
    """Leave the process group joined by :func:`init_distributed` (if any)."""
    if info.initialised and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.initialised:
        dist.barrier()


def unwrap(model):
    """Return the pipeline inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, 'module') else model


def all_finite(value: float, info: DistInfo) -> bool:
    """Whether ``value`` is finite on every rank (all ranks get the same answer)."""
    ok = torch.tensor([1.0 if math.isfinite(value) else 0.0])
    if info.initialised:
        ok = ok.to(info.device)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """Whether ``flag`` is true on at least one rank (all ranks get the same answer)."""
    if not info.initialised:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather(obj, info: DistInfo) -> list:
    """List of ``obj`` from every rank, in rank order (``[obj]`` in a single process)."""
    if not info.initialised:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out

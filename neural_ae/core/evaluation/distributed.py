"""
Evaluation beyond one process: shard pairs and drives by rank, merge on every rank.

Under ``torchrun --nproc_per_node N -m neural_ae.cli evaluate ...`` every process joins
the same ``env://`` process group as training does
(:func:`neural_ae.core.training.distributed.init_distributed`, gloo on the CPU) and gets a
:class:`Shard`: the shift protocol runs pairs ``rank, rank + N, ...``, the drive protocol
the (drive, method) jobs ``rank, rank + N, ...``; the ranks then exchange their results
(``all_gather_object``) and every rank rebuilds the figures from all of them in the order
a single process would have made them. Every random draw is seeded by the pair, repeat
and job (never by the process), so the figures are *identical* to a single-process run
with the same seeds; rank 0 alone prints and writes the report.
"""
from dataclasses import dataclass
from typing import Any, Dict, Sequence

from neural_ae.core.errors import EvaluationError

__all__ = ['join', 'leave', 'Shard', 'single_process']


@dataclass
class Shard:
    """This process's share of an evaluation: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1
    info: Any = None
    """:class:`~neural_ae.core.training.distributed.DistInfo` of a joined process group."""

    def __post_init__(self):
        if not (isinstance(self.world, int) and self.world >= 1
                and isinstance(self.rank, int) and 0 <= self.rank < self.world):
            raise EvaluationError(f'shard: rank {self.rank!r} of world {self.world!r} '
                                  f'(need 0 <= rank < world)')

    @property
    def main(self) -> bool:
        """Whether this process prints and writes (rank 0)."""
        return self.rank == 0

    def indices(self, n: int) -> Sequence[int]:
        """Items ``0 .. n - 1`` of this rank: ``rank, rank + world, ...``."""
        return range(self.rank, int(n), self.world)

    def gather(self, obj) -> list:
        """``obj`` of every rank, in rank order (``[obj]`` for a single process)."""
        if self.world == 1 or self.info is None:
            return [obj]
        from neural_ae.core.training.distributed import gather

        return gather(obj, self.info)

    def merge(self, parts: Dict[int, Any]) -> Dict[int, Any]:
        """Union of every rank's ``{item index: result}`` (each index from one rank)."""
        out: Dict[int, Any] = {}
        for got in self.gather(parts):
            overlap = set(out) & set(got)
            if overlap:
                raise EvaluationError(f'shard merge: items {sorted(overlap)[:5]} came from '
                                      f'two ranks')
            out.update(got)
        return out


def single_process() -> Shard:
    """Return the shard of a plain, single-process run (everything is this one's)."""
    return Shard(0, 1, None)


def join(device: str = 'cpu') -> Shard:
    """
    Join the process group when started by torchrun (``WORLD_SIZE > 1``), else one shard.

    The group is the training one (:func:`~neural_ae.core.training.distributed.
    init_distributed`): gloo on the CPU, nccl on CUDA.
    """
    import os

    if int(os.environ.get('WORLD_SIZE', '1')) <= 1:
        return single_process()
    from neural_ae.core.training.distributed import init_distributed

    info = init_distributed(device)
    return Shard(info.rank, info.world, info)


def leave(shard: Shard) -> None:
    """Leave the process group :func:`join` joined (no-op for a single process)."""
    if shard.info is not None:
        from neural_ae.core.training.distributed import shutdown

        shutdown(shard.info)

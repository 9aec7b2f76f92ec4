"""
Random state of a training run: seeding, and capture/restore for resumption.

:func:`rng_state` captures the torch (and CUDA), numpy (legacy global) and python
generators in a form ``torch.load(weights_only=True)`` reads back, so a checkpoint holds
the state of every rank and :func:`set_rng_state` continues a run where it stopped.
"""
import random

import numpy as np
import torch


def rng_state() -> dict:
    """Torch, numpy (legacy global) and python RNG states, weights_only-loadable."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {'torch': torch.get_rng_state(),
             'numpy': [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
             'python': random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state['torch'])
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and python."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def loader_generator(seed: int) -> torch.Generator:
    """
    Return a torch generator seeded with ``seed`` for one DataLoader.

    A loader with its own generator draws nothing from the global RNG stream, so a run
    resumed mid-epoch (a new loader) sees the same noise as an uninterrupted one.
    """
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen

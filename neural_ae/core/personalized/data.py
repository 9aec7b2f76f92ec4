"""
Exposure variants of HDR scenes with every expert's ideal correction (stage 1 and 2 data).

Per scene seed: the procedural scene (``height x width``), its native exposure ``e_ref``
(:func:`~neural_ae.core.personalized.experts.reference_exposure`) and expert offsets
``d_k`` [EV]; then ``V`` exact variants captured through the sensor model (Poisson shot
noise, read noise; seed ``[scene seed, variant]``) at ``e_ref * 2 ** v``, ``v`` from
``-2`` to ``+2`` EV in 0.2 EV steps (21 variants; Eq. 6 split: time up to 15 ms, then
gain), each processed by :func:`~neural_ae.core.personalized.policy.policy_input`
(fixed ISP, ``size x size`` uint8). The sensor clamps: a dark scene's ``+2 EV`` variant
may need more than the longest exposure at the highest gain, a bright one's ``-2 EV``
less than the shortest; such variants are captured at the clamped exposure, and their
offset is the one actually captured, ``a = log2(t_exp K / e_ref)`` (``variant_ev``
``(N, V)``; ``a = v`` where nothing clamps). The ideal correction of variant ``v`` for
expert ``k`` is ``y = d_k - a`` [EV] (so the mid-grey expert's is ``-a``): identical
clamped images get identical labels. (Version 1 of the cache labelled them ``d_k - v``:
up to 4 EV apart for the same image; version 2 clamped the detector expert's sweep to
the sensor's range.)

Seeds (disjoint from every other model's): training 3,700,000.., validation
3,800,000.., test 3,900,000.. (:data:`SEED_STARTS`). Scenes are built in chunks of
``CHUNK`` seeds cached as ``<cache_dir>/<key>/<first seed>-<count>.npz`` (written
atomically, so two processes may fill one cache). The key hashes :class:`VariantSpec` and
the scene generator, not the detector file's contents: the detector expert's offsets are
those of the detector at build time (delete the cache after retraining the detector).
"""
from dataclasses import asdict, dataclass
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Dict, Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.errors import ConfigError
from neural_ae.core.personalized.experts import expert_offsets, EXPERTS
from neural_ae.core.personalized.policy import policy_input
import numpy as np

LOG = logging.getLogger(__name__)

SEED_STARTS = {'train': 3_700_000, 'val': 3_800_000, 'test': 3_900_000}
"""First scene seed of each split (issue 12)."""
CHUNK = 50
VARIANTS_EV = np.round(np.arange(-2.0, 2.0001, 0.2), 6)
"""Variant offsets from the native exposure [EV] (the paper's -2..+2 in 0.2 steps)."""


@dataclass(frozen=True)
class VariantSpec:
    """What a variant cache holds (its key is a hash of these fields)."""

    height: int = 192
    width: int = 320
    size: int = 128
    sensor: str = 'imx249'
    detector_model: str = ''
    version: int = 3


@dataclass
class VariantSet:
    """
    Scenes x variants of one split.

    ``images`` uint8 ``(N, V, S, S, 3)``; ``offsets`` float32 ``(N, K)`` [EV] (expert order
    ``experts``); ``variants_ev`` ``(V,)`` the offsets asked for; ``seeds`` ``(N,)``;
    ``variant_ev`` float32 ``(N, V)`` [EV] the offsets captured (after the sensor's
    clamp; ``None``: as asked).
    """

    images: np.ndarray
    offsets: np.ndarray
    variants_ev: np.ndarray
    seeds: np.ndarray
    experts: tuple = EXPERTS
    variant_ev: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.seeds)

    @property
    def actual_ev(self) -> np.ndarray:
        """Offsets ``(N, V)`` [EV] each variant was captured at (after the sensor's clamp)."""
        if self.variant_ev is not None:
            return self.variant_ev
        return np.broadcast_to(self.variants_ev[None, :].astype(np.float32),
                               (len(self.seeds), len(self.variants_ev)))

    def ideal(self, expert: str) -> np.ndarray:
        """Ideal correction ``(N, V)`` [EV] of every variant for ``expert``."""
        k = self.experts.index(expert)
        return (self.offsets[:, k:k + 1] - self.actual_ev).astype(np.float32)

    def subset(self, n: int) -> 'VariantSet':
        """Return the first ``n`` scenes."""
        return VariantSet(self.images[:n], self.offsets[:n], self.variants_ev,
                          self.seeds[:n], self.experts,
                          None if self.variant_ev is None else self.variant_ev[:n])


def spec_key(spec: VariantSpec) -> str:
    """Cache folder name of ``spec``."""
    from neural_ae.core.scenes.version import generator_key

    fields = {**asdict(spec), 'detector_model': Path(spec.detector_model).name}
    blob = json.dumps({**fields, 'gen': generator_key(spec.height, spec.width)},
                      sort_keys=True)
    return f'{spec.size}px-' + hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_chunk(seeds: Sequence[int], spec: VariantSpec, perception=None) -> Dict[str, np.ndarray]:
    """Render the variants and expert offsets of ``seeds`` (see the module docstring)."""
    from neural_ae.core.scenes import generate_scene

    sensor = S.load_sensor(spec.sensor)
    n, v = len(seeds), len(VARIANTS_EV)
    images = np.zeros((n, v, spec.size, spec.size, 3), np.uint8)
    offsets = np.zeros((n, len(EXPERTS)), np.float32)
    actual = np.zeros((n, v), np.float32)
    for i, seed in enumerate(seeds):
        scene = generate_scene(int(seed), height=spec.height, width=spec.width)
        offs = expert_offsets(scene, sensor, perception, seed=int(seed))
        offsets[i] = [offs[k] for k in EXPERTS]
        phi = S.mosaic(scene.radiance, sensor.bayer_pattern)
        for j, ev in enumerate(VARIANTS_EV):
            sp = S.split_exposure(offs['e_ref_s'] * 2.0 ** float(ev), sensor)
            actual[i, j] = math.log2(sp.t_exp_s * sp.gain / offs['e_ref_s'])
            raw = S.capture(phi, sp.t_exp_s, sp.gain, sensor,
                            np.random.default_rng([int(seed), j]))
            images[i, j] = policy_input(raw, sensor, spec.size)
    return {'images': images, 'offsets': offsets, 'seeds': np.asarray(seeds, np.int64),
            'variant_ev': actual}


def load_variants(split: str, count: int, spec: VariantSpec, cache_dir='out/personalized/cache',
                  perception=None, build: bool = True, start: Optional[int] = None) -> VariantSet:
    """
    ``count`` scenes of ``split`` (``'train'``/``'val'``/``'test'``), from the cache or built.

    ``perception`` is loaded from ``spec.detector_model`` when needed and not given.
    """
    if split not in SEED_STARTS and start is None:
        raise ConfigError(f'split must be one of {tuple(SEED_STARTS)}, got {split!r}')
    first = SEED_STARTS[split] if start is None else int(start)
    folder = Path(cache_dir) / spec_key(spec)
    parts = []
    for c0 in range(first, first + count, CHUNK):
        seeds = list(range(c0, min(c0 + CHUNK, first + count)))
        path = folder / f'{c0}-{len(seeds)}.npz'
        if path.is_file():
            with np.load(path) as z:
                parts.append({k: z[k] for k in z.files})
            continue
        if not build:
            raise ConfigError(f'variant cache {path} missing (build=False)')
        if perception is None and spec.detector_model:
            from neural_ae.core.personalized.experts import optional_perception

            perception = optional_perception(spec.detector_model, S.load_sensor(spec.sensor))
        LOG.info('building variants of seeds %d..%d', seeds[0], seeds[-1])
        chunk = build_chunk(seeds, spec, perception)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f'.{path.name}.{os.getpid()}.tmp.npz'
        np.savez(tmp, images=chunk['images'], offsets=chunk['offsets'], seeds=chunk['seeds'],
                 variant_ev=chunk['variant_ev'])
        os.replace(tmp, path)
        parts.append(chunk)
    return VariantSet(np.concatenate([p['images'] for p in parts]),
                      np.concatenate([p['offsets'] for p in parts]), VARIANTS_EV.copy(),
                      np.concatenate([p['seeds'] for p in parts]), EXPERTS,
                      np.concatenate([p['variant_ev'] for p in parts]))

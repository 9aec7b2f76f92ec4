"""
Pairs for exposure correction from the HDR scenes: a wrong exposure and its reference.

**Input**: the scene's radiance captured at ``kappa * e_base`` through the sensor model
(:func:`neural_ae.core.sensor.capture`: Poisson shot and dark noise, read noise, full-well
and white-level clipping, 12-bit quantization), then the ISP. **Reference** (our
definition of "well exposed", used as the target of training and of PSNR/SSIM): the same
radiance captured **noise-free** at ``e_base`` (:func:`neural_ae.core.sensor.e_base_s`,
mean raw at half the white level after clipping the irradiance at its 99th percentile:
the project's base exposure, the one the shift protocol calls right) through the same
ISP. Highlights that clip at ``e_base`` clip in the reference too (it is a camera frame,
not a tone-mapped HDR rendering).

The ISP is the trained ISP of a perception model (by default the shipped Hybrid
model's, so corrected frames live in the detector's colour space), or the sensor's
default ISP; :func:`load_isp` builds it, and the correction checkpoint stores its state.

Seeds (disjoint from every other range of the project, see README "Seeds"): training
scenes 3,400,000.., validation 3,500,000.., test 3,600,000.. (frames of
:func:`neural_ae.core.scenes.generate_pair`, both frames of a pair used).

003's protocol (:func:`gamma_clip`): over-exposure simulated on the reference by
clipping in gamma space, and its trivial inverse.
"""
import math
from typing import Optional, Sequence

from neural_ae.core import sensor as S
from neural_ae.core.errors import ConfigError, ModelError
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ['CorrectionPairs', 'gamma_clip', 'gamma_clip_inverse', 'load_isp', 'make_example',
           'render_raw', 'SEEDS', 'scene_group']

SEEDS = {'train': 3_400_000, 'val': 3_500_000, 'test': 3_600_000}
"""First scene seed of each split of the correction data (issue 14)."""


def load_isp(path: Optional[str], sensor: S.SensorConfig):
    """
    Return the ISP of perception model ``path`` (its trained ISP), or the default for ``''``.

    Returns an :class:`neural_ae.core.isp.ISP` in eval mode. Raises
    :class:`~neural_ae.core.errors.ModelError` for a bad model file.
    """
    from neural_ae.core.isp import ISP, ISPConfig

    if not path:
        return ISP(ISPConfig.from_sensor(sensor)).eval()
    from neural_ae.core.checkpoints import resolve_model_path
    from neural_ae.core.models.perception import load_perception

    return load_perception(resolve_model_path(path), sensor).isp.cpu().eval()


def isp_from_state(state: dict, sensor: S.SensorConfig):
    """Rebuild an ISP from a state dict saved by :func:`load_isp`'s ISP."""
    from neural_ae.core.isp import ISP, ISPConfig

    isp = ISP(ISPConfig.from_sensor(sensor, learnable=True))
    try:
        isp.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        raise ModelError(f'correction model: bad ISP state: {str(err).splitlines()[0]}') \
            from err
    return isp.eval()


def render_raw(isp, raw: np.ndarray) -> torch.Tensor:
    """ISP of one raw frame ``(H, W)`` [DN] -> ``(3, H, W)`` float32 RGB in [0, 1] (no grad)."""
    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))[None, None]
    with torch.no_grad():
        return isp(x)[0].float()


def make_example(rad: np.ndarray, sensor: S.SensorConfig, isp, kappa: float,
                 rng: np.random.Generator, noise: bool = True) -> dict:
    """
    One pair from radiance ``rad`` ``(H, W, 3)`` [e-/s]: input at ``kappa * e_base``.

    Returns ``{'input', 'target'}`` ``(3, H, W)`` float32 RGB in [0, 1], ``'raw'`` the
    input's raw frame ``(H, W)`` uint16 [DN], ``'e_base'`` [s], ``'e_in'`` (delivered
    exposure of the input [s]) and ``'kappa'`` (``e_in / e_base``, after the sensor's
    limits).
    """
    phi = S.mosaic(np.asarray(rad, np.float32), sensor.bayer_pattern)
    e_base = S.e_base_s(phi, sensor)
    ref_split = S.split_exposure(e_base, sensor)
    ref_raw = S.capture(phi, ref_split.t_exp_s, ref_split.gain, sensor, rng, noise=False)
    split = S.split_exposure(kappa * e_base, sensor)
    raw = S.capture(phi, split.t_exp_s, split.gain, sensor, rng, noise=noise)
    return {'input': render_raw(isp, raw), 'target': render_raw(isp, ref_raw), 'raw': raw,
            'e_base': e_base, 'e_in': split.e_s, 'kappa': split.e_s / ref_split.e_s}


def scene_group(seed: int) -> str:
    """Lighting group ('day', 'dusk', 'night') of procedural scene ``seed``."""
    from neural_ae.core.scenes.scenarios import sample_scenario, scenario_group

    return scenario_group(sample_scenario(np.random.default_rng([int(seed), 7])))


def draw_training_kappa(rng: np.random.Generator, kappa_min: float, kappa_max: float,
                        near_fraction: float) -> float:
    """
    Training exposure factor: ``|log kappa|`` uniform in ``[log kappa_min, log kappa_max]``.

    Direction (under / over) with equal probability; with probability ``near_fraction``
    instead log-uniform in ``[1 / kappa_min, kappa_min]`` (nearly right exposures, so
    the network learns to leave a good frame alone).
    """
    if rng.random() < near_fraction:
        return float(math.exp(rng.uniform(-math.log(kappa_min), math.log(kappa_min))))
    mag = math.exp(rng.uniform(math.log(kappa_min), math.log(kappa_max)))
    return mag if rng.random() < 0.5 else 1.0 / mag


class CorrectionPairs(Dataset):
    """
    Training / validation pairs: :func:`make_example` on frames of procedural scenes.

    ``source``: a :class:`neural_ae.core.training.data.ProceduralPairs` (both frames of
    every pair are used: index ``i`` is frame ``i % 2`` of pair ``i // 2``). ``kappas``:
    fixed factors cycled over the examples (validation), or None to draw them with
    :func:`draw_training_kappa`. ``crop``: ``(h, w)`` random crop (training) or None.
    Every draw (kappa, noise, crop, flip) comes from a generator seeded by ``(seed,
    epoch, index)``: deterministic and independent of workers and resumption. Items:
    ``{'input', 'target'}`` ``(3, h, w)`` and ``'kappa'`` (a float tensor).
    """

    def __init__(self, source, sensor: S.SensorConfig, isp, seed: int = 0,
                 kappas: Optional[Sequence[float]] = None, crop: Optional[tuple] = None,
                 kappa_min: float = 1.5, kappa_max: float = 12.0, near_fraction: float = 0.1,
                 hflip: bool = True):
        self.source = source
        self.sensor = sensor
        self.isp = isp
        self.seed = int(seed)
        self.kappas = None if kappas is None else [float(k) for k in kappas]
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        if not (1.0 < kappa_min <= kappa_max):
            raise ConfigError(f'correction pairs: need 1 < kappa_min <= kappa_max, got '
                              f'{kappa_min}, {kappa_max}')
        self.kappa_min, self.kappa_max = float(kappa_min), float(kappa_max)
        self.near_fraction = float(near_fraction)
        self.hflip = bool(hflip) and kappas is None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new kappas, noise and crops for ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return 2 * len(self.source)

    def __getitem__(self, index: int) -> dict:
        rec = self.source[index // 2]
        rad = rec['rad1'] if index % 2 == 0 else rec['rad2']
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.kappas is not None:
            kappa = self.kappas[index % len(self.kappas)]
        else:
            kappa = draw_training_kappa(rng, self.kappa_min, self.kappa_max,
                                        self.near_fraction)
        if self.crop is not None:
            h, w = rad.shape[:2]
            ch, cw = self.crop
            if ch > h or cw > w:
                raise ConfigError(f'crop {ch} x {cw} larger than the frames ({h} x {w})')
            # even offsets keep the Bayer phase
            y0 = 2 * int(rng.integers(0, (h - ch) // 2 + 1))
            x0 = 2 * int(rng.integers(0, (w - cw) // 2 + 1))
            # e_base of the crop, not of the frame: the crop is the image being corrected
            rad = rad[y0:y0 + ch, x0:x0 + cw]
        if self.hflip and rng.random() < 0.5:
            rad = rad[:, ::-1]
        ex = make_example(np.ascontiguousarray(rad), self.sensor, self.isp, kappa, rng)
        return {'input': ex['input'], 'target': ex['target'],
                'kappa': torch.tensor(ex['kappa'], dtype=torch.float32)}


def gamma_clip(reference: torch.Tensor, tau: float = 0.5, gamma: float = 2.2) -> torch.Tensor:
    """
    003's simulated over-exposure of a gamma-encoded image in [0, 1].

    Linearize with ``gamma``, over-expose by ``1 / tau`` (one stop for 0.5) and clip at 1,
    re-encode: ``min(x * tau ** (-1 / gamma), 1)`` (our reading of "cropping pixel
    intensities in gamma space, gamma = 1/2.2, tau = 0.5").
    """
    return torch.clamp(reference * tau ** (-1.0 / gamma), 0.0, 1.0)


def gamma_clip_inverse(image: torch.Tensor, tau: float = 0.5, gamma: float = 2.2) -> torch.Tensor:
    """Invert :func:`gamma_clip` trivially: ``x * tau ** (1 / gamma)`` (clipped stays flat)."""
    return image * tau ** (1.0 / gamma)

"""
Exact pixel-level exposure labels from the procedural HDR scenes (IEA40K stand-in).

Definitions (issue 13; ``Y`` is the ISP's tone-curved luminance
``0.2126 R + 0.7152 G + 0.0722 B`` of :class:`neural_ae.core.isp.ISP` output, in [0, 1]):

- **Ideal exposure** ``e_ideal = e_base(phi)`` (:func:`neural_ae.core.sensor.e_base_s`):
  the mean raw signal at half the white level after clipping the radiance at its 99th
  percentile (a sun disc or headlights under 1 % of the frame do not set it). It is the
  exposure the shift protocol of ``neural-ae evaluate`` measures EV errors against.
- **Reference** ``Y_ref``: the noise-free capture at ``e_ideal`` (gain 0 dB) through the ISP.
- **Capture**: exposure ``e = e_ideal * 2**shift_ev`` split into gain ``g`` (dB drawn per
  example) and time ``t = e / g``; the network's input is the noisy capture through the
  ISP, quantized to 8 bits (what the monitor node and the judge see); ``Y_mean`` is the
  same capture without noise.
- **Noise** ``sigma_Y``: the per-pixel standard deviation of ``Y`` from the sensor's
  shot, dark and read noise at that ``(t, g)``, propagated through the tone curve:
  ``sigma_Y = T(L + sigma_L) - T(L)`` (zero where the pixel is clipped).
- **Residual** ``r = clip(A * (Y_ref - Y_mean) + B * sigma_Y, -1, 1)``, with
  :data:`RESIDUAL_GAIN` ``A = 2`` and :data:`NOISE_GAIN` ``B = 2``: positive
  (under-exposed) where the capture is darker than the reference *or noisy* (crushed,
  noisy shadows count), negative (over-exposed) where it is brighter (clipped
  highlights count: they stay at ``Y = 1``), 0 ideal. A mid-grey pixel one EV darker than
  ideal gets about +0.4, one EV brighter about -0.5; a 4 EV error saturates at +-1.
- **True score** ``10 * (1 - mean |r|)`` (the paper's holistic score without fine-tuning).

Seeds (disjoint from every other range of the project): training scenes
:data:`TRAIN_SEED_START` 3,000,000.., validation :data:`VAL_SEED_START` 3,100,000..,
test :data:`TEST_SEED_START` 3,200,000... The scenario of seed ``s`` is
``SCENARIOS[s % 8]``, so every range covers all eight scenarios (day, dusk and night
groups) evenly. Sensor gains: :data:`GAINS_DB` (0..24 dB, the IMX249's range).
"""
from dataclasses import dataclass
import math
from typing import Optional, Sequence, Tuple

from neural_ae.core import sensor as S
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.errors import NeuralAEError
from neural_ae.core.isp import ISP, ISPConfig
from neural_ae.core.scenes import generate_scene, SCENARIOS
import numpy as np
import torch

__all__ = ['AssessmentExample', 'GAINS_DB', 'LUMA', 'NOISE_GAIN', 'RESIDUAL_GAIN',
           'TEST_SEED_START', 'TEST_SHIFTS_EV', 'TRAIN_SEED_START', 'VAL_SEED_START',
           'ExampleSpec', 'isp_for', 'luma', 'random_spec', 'render_example', 'residual_map',
           'scenario_of', 'test_specs', 'true_score']

TRAIN_SEED_START = 3_000_000
VAL_SEED_START = 3_100_000
TEST_SEED_START = 3_200_000
RESIDUAL_GAIN = 2.0
NOISE_GAIN = 2.0
GAINS_DB = (0.0, 6.0, 12.0, 18.0, 24.0)
TEST_SHIFTS_EV = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)
LUMA = (0.2126, 0.7152, 0.0722)
SHIFT_RANGE_EV = (-4.0, 4.0)

_ISPS: dict = {}


def scenario_of(seed: int) -> str:
    """Scenario of scene seed ``seed``: ``SCENARIOS[seed % 8]``."""
    return SCENARIOS[int(seed) % len(SCENARIOS)]


def isp_for(sensor: S.SensorConfig) -> ISP:
    """Return the (cached, frozen) default ISP of ``sensor``."""
    key = (sensor.black_level_dn, sensor.bit_depth, sensor.bayer_pattern)
    if key not in _ISPS:
        _ISPS[key] = ISP(ISPConfig.from_sensor(sensor)).eval()
    return _ISPS[key]


def _isp_rgb(raw: np.ndarray, isp: ISP) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(raw.astype(np.float32))[None, None]
        return isp(x)[0].permute(1, 2, 0).numpy()


def luma(rgb: np.ndarray) -> np.ndarray:
    """Luminance ``(H, W)`` of gamma-encoded RGB ``(H, W, 3)`` (Rec. 709 weights)."""
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise AssessmentError(f'luma: expected an (H, W, 3) image, got shape {rgb.shape}')
    return rgb @ np.asarray(LUMA, np.float32)


def _tone(x: np.ndarray, isp: ISP) -> np.ndarray:
    c = isp.config
    inv = 1.0 / float(c.gamma)
    eps = float(c.eps)
    x = np.clip(x, 0.0, 1.0)
    return ((x + eps) ** inv - eps ** inv) / ((1 + eps) ** inv - eps ** inv)


def residual_map(y_ref: np.ndarray, y_mean: np.ndarray,
                 sigma_y: Optional[np.ndarray] = None) -> np.ndarray:
    """``clip(A (Y_ref - Y_mean) + B sigma_Y, -1, 1)`` (module docstring), float32 ``(H, W)``."""
    r = RESIDUAL_GAIN * (np.asarray(y_ref, np.float32) - np.asarray(y_mean, np.float32))
    if sigma_y is not None:
        r = r + NOISE_GAIN * np.asarray(sigma_y, np.float32)
    return np.clip(r, -1.0, 1.0).astype(np.float32)


def true_score(residual: np.ndarray) -> float:
    """``10 * (1 - mean |r|)`` of one map."""
    return float(10.0 * (1.0 - np.abs(np.asarray(residual, np.float64)).mean()))


@dataclass(frozen=True)
class ExampleSpec:
    """One example: scene seed, exposure shift [EV], sensor gain [dB], noise seed."""

    seed: int
    shift_ev: float
    gain_db: float
    noise_seed: int


@dataclass
class AssessmentExample:
    """
    One rendered example.

    ``rgb``: float32 ``(H, W, 3)`` in [0, 1], the noisy capture through the ISP,
    quantized to 8 bits; ``residual``: float32 ``(H, W)`` in [-1, 1]; ``score``: the true
    score; ``scenario``, ``spec``; ``e_ideal_s``: ``e_base`` [s].
    """

    rgb: np.ndarray
    residual: np.ndarray
    score: float
    scenario: str
    spec: ExampleSpec
    e_ideal_s: float


def render_example(spec: ExampleSpec, height: int = 128, width: int = 128,
                   sensor: Optional[S.SensorConfig] = None) -> AssessmentExample:
    """Render ``spec`` (module docstring): noisy input image and exact residual label."""
    if not (math.isfinite(spec.shift_ev) and abs(spec.shift_ev) <= 8):
        raise AssessmentError(f'render_example: shift_ev must be finite in [-8, 8] EV, '
                              f'got {spec.shift_ev}')
    if not (math.isfinite(spec.gain_db) and 0 <= spec.gain_db <= 48):
        raise AssessmentError(f'render_example: gain_db must be in [0, 48] dB, got '
                              f'{spec.gain_db}')
    sensor = sensor or S.load_sensor('imx249')
    isp = isp_for(sensor)
    scenario = scenario_of(spec.seed)
    try:
        scene = generate_scene(spec.seed, scenario, height, width)
        phi = S.mosaic(scene.radiance, sensor.bayer_pattern)
        e0 = S.e_base_s(phi, sensor)
    except NeuralAEError as err:
        raise AssessmentError(f'render_example: seed {spec.seed}: {err}') from err
    gain = 10.0 ** (spec.gain_db / 20.0)
    e = e0 * 2.0 ** spec.shift_ev
    t = e / gain
    rng = np.random.default_rng([spec.noise_seed, 13])
    raw = S.capture(phi, t, gain, sensor, rng)
    raw_mean = S.capture(phi, t, gain, sensor, noise=False)
    raw_ref = S.capture(phi, e0, 1.0, sensor, noise=False)
    rgb = np.round(_isp_rgb(raw, isp) * 255.0) / 255.0
    y_mean = luma(_isp_rgb(raw_mean, isp))
    y_ref = luma(_isp_rgb(raw_ref, isp))
    # per-pixel noise of the linear luminance [fraction of the white level]
    g = sensor.g1_dn_per_e * gain
    span = float(sensor.white_level_dn - sensor.black_level_dn)
    phi_y = scene.radiance.astype(np.float64) @ np.asarray(LUMA)
    mu_e = np.minimum(phi_y * t, sensor.full_well_e)
    var_dn = g * g * (mu_e + sensor.dark_current_e_per_s * t) + \
        (g * sensor.read_noise_pre_e) ** 2 + sensor.read_noise_post_dn ** 2
    lin = mu_e * g / span
    sigma_l = np.sqrt(var_dn) / span
    sigma_y = np.where(lin >= 1.0, 0.0, _tone(lin + sigma_l, isp) - _tone(lin, isp))
    r = residual_map(y_ref, y_mean, sigma_y)
    return AssessmentExample(rgb.astype(np.float32), r, true_score(r), scenario, spec, e0)


def random_spec(rng: np.random.Generator, seed: int) -> ExampleSpec:
    """Draw a training example of scene ``seed``: shift U[-4, 4] EV, gain from GAINS_DB."""
    return ExampleSpec(int(seed), float(rng.uniform(*SHIFT_RANGE_EV)),
                       float(GAINS_DB[int(rng.integers(len(GAINS_DB)))]),
                       int(rng.integers(2 ** 31)))


def test_specs(seed_start: int, n_scenes: int,
               shifts: Sequence[float] = TEST_SHIFTS_EV) -> Tuple[ExampleSpec, ...]:
    """Held-out grid: every scene at every shift, gain drawn per (scene, shift) from the seed."""
    out = []
    for j in range(int(n_scenes)):
        seed = int(seed_start) + j
        for k, s in enumerate(shifts):
            rng = np.random.default_rng([seed, k, 29])
            gain = float(GAINS_DB[int(rng.integers(len(GAINS_DB)))])
            out.append(ExampleSpec(seed, float(s), gain, int(rng.integers(2 ** 31))))
    return tuple(out)

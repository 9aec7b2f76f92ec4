"""
Exposure networks of Onzon et al. (Sec. 4.1-4.3): histogram, semantic and hybrid.

Every network predicts a multiplicative exposure change ``u`` for the next frame from
the current one, squashed into ``[1 / M_exp, M_exp]`` by Eq. 4 (:func:`exposure_output`).

- :class:`HistogramBranch` reads the ``(B, 256, 59)`` multi-scale histograms (256 bins x
  59 regions: 1 + 3x3 + 7x7 tiles of the first green Bayer pixel, each normalised by its
  pixel count).
- :class:`SemanticBranch` reads the detector backbone's 128-channel stride-8 stage
  (torchvision ``layer2``, the paper's "ResNet conv2"), ``(B, 128, H/8, W/8)``, shared
  with the detector (no second backbone pass).
- :class:`ExposureNet` sums the feature vectors of the enabled branches and applies one
  common dense layer + Eq. 4; ``mode='histogram'`` and ``mode='semantic'`` are the same
  code with one branch switched off.
"""
import math
from typing import Optional, Sequence

from neural_ae.core.checks import check_shape
from neural_ae.core.errors import ModelError
import torch
from torch import nn

NUM_BINS = 256
NUM_REGIONS = 59
SEMANTIC_CHANNELS = 128
CFM_CHANNELS = 26
POOL_GRIDS = (2, 4, 8)
MODES = ('hybrid', 'histogram', 'semantic')


class ExposureNetError(ModelError, ValueError):
    """Bad input to an exposure network (missing for the mode, wrong type or shape)."""


def _check_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ExposureNetError(f'{name}: expected a torch.Tensor, got {type(x).__name__}')
    if not x.is_floating_point():
        raise ExposureNetError(f'{name}: expected a floating point tensor, got {x.dtype}')
    return x


def exposure_output(x: torch.Tensor, m_exp: float = 10.0) -> torch.Tensor:
    """
    Map a logit to an exposure change factor, paper Eq. 4.

    ``u = exp(2 * (sigmoid(x) - 0.5) * log(M_exp))``, computed as the identical and
    overflow-free ``exp(tanh(x / 2) * log(M_exp))``. ``u`` is dimensionless and lies in
    ``[1 / M_exp, M_exp]`` (``u = 1`` at ``x = 0``); the result is clamped to that interval
    so that float rounding of ``exp(log(M_exp))`` cannot leave it.

    :param x: logits, any shape, any real values (including +-inf).
    :param m_exp: largest change per frame, > 1 (paper: 10).
    :return: tensor of ``x``'s shape.
    """
    _check_tensor(x, 'exposure_output')
    if not m_exp > 1.0:
        raise ExposureNetError(f'exposure_output: m_exp must be > 1, got {m_exp}')
    log_m = math.log(m_exp)
    u = torch.exp(torch.tanh(0.5 * x) * log_m)
    return u.clamp(1.0 / m_exp, m_exp)


class HistogramBranch(nn.Module):
    """
    Histogram branch (paper Sec. 4.1): three 1-D convolutions and three dense layers.

    Input ``(B, 256, 59)`` histograms (bins x regions, each column sums to 1). The 59
    regions are the channels of the 1-D convolutions over the bin axis, kernel 4 and
    stride 4: 256 -> 64 -> 16 -> 4 bins. Then dense layers 4 and 5 (ReLU after layers
    1-5) give the feature vector (:meth:`features`, ``(B, feature_dim)``), and layer 6
    (``head``, absent when ``with_head=False``) the logit fed to Eq. 4.

    Parameters with the defaults (channels 64, hidden 128, feature_dim 64): 89,281
    (89,216 without the head).
    """

    def __init__(self, feature_dim: int = 64, channels: Sequence[int] = (64, 64, 64),
                 hidden: int = 128, with_head: bool = True):
        super().__init__()
        c1, c2, c3 = channels
        self.feature_dim = feature_dim
        self.convs = nn.Sequential(
            nn.Conv1d(NUM_REGIONS, c1, kernel_size=4, stride=4), nn.ReLU(inplace=True),
            nn.Conv1d(c1, c2, kernel_size=4, stride=4), nn.ReLU(inplace=True),
            nn.Conv1d(c2, c3, kernel_size=4, stride=4), nn.ReLU(inplace=True))
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * NUM_BINS // 64, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, 1) if with_head else None

    @staticmethod
    def check_input(hist) -> torch.Tensor:
        """Raise :class:`ExposureNetError` unless ``hist`` is ``(B, 256, 59)`` float."""
        _check_tensor(hist, 'histogram branch')
        check_shape(hist, ('B', NUM_BINS, NUM_REGIONS), name='histogram branch histograms',
                    error=ExposureNetError)
        return hist

    def features(self, hist: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 256, 59)`` histograms to a ``(B, feature_dim)`` vector, after ReLU."""
        hist = self.check_input(hist)
        return self.dense(self.convs(hist.transpose(1, 2)))

    def forward(self, hist: torch.Tensor) -> torch.Tensor:
        """``(B, 256, 59)`` histograms -> ``(B,)`` logits (layer 6)."""
        if self.head is None:
            raise ExposureNetError('histogram branch built with with_head=False has no '
                                   'logit; use features()')
        return self.head(self.features(hist)).squeeze(-1)


class SemanticBranch(nn.Module):
    """
    Semantic branch (paper Sec. 4.2) on the detector backbone's 128-channel stage.

    Input ``(B, 128, h, w)`` (stride 8, ``h, w >= 1``). Pyramid pooling at 4 scales: the
    global average of the 128-channel map (128 values); a 1x1 convolution 128 -> 26
    (+ ReLU) gives the compressed feature map (CFM), max- and average-pooled on 2x2, 4x4
    and 8x8 grids (adaptive pooling: the map is divided into an n x n array, as in the
    paper's Fig. 3; maps smaller than 8x8 still work). Flattened and concatenated:
    ``128 + 2 * 26 * (4 + 16 + 64) = 4,496`` values -> dense + ReLU -> feature vector
    (:meth:`features`); ``head`` (absent with ``with_head=False``) -> logit.

    Parameters with the defaults (feature_dim 64): 291,227 (291,162 without the head).
    """

    def __init__(self, feature_dim: int = 64, in_channels: int = SEMANTIC_CHANNELS,
                 cfm_channels: int = CFM_CHANNELS, grids: Sequence[int] = POOL_GRIDS,
                 with_head: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.grids = tuple(grids)
        self.feature_dim = feature_dim
        self.compress = nn.Sequential(nn.Conv2d(in_channels, cfm_channels, kernel_size=1),
                                      nn.ReLU(inplace=True))
        pooled = in_channels + 2 * cfm_channels * sum(g * g for g in self.grids)
        self.dense = nn.Sequential(nn.Linear(pooled, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, 1) if with_head else None

    def check_input(self, fmap) -> torch.Tensor:
        """Raise :class:`ExposureNetError` unless ``fmap`` is ``(B, in_channels, h, w)``."""
        _check_tensor(fmap, 'semantic branch')
        check_shape(fmap, ('B', self.in_channels, 'h', 'w'),
                    name='semantic branch backbone features', error=ExposureNetError)
        if min(fmap.shape[2:]) < 1:
            raise ExposureNetError(f'semantic branch: expected backbone features of shape '
                                   f'(B, {self.in_channels}, h, w), got {tuple(fmap.shape)}')
        return fmap

    def features(self, fmap: torch.Tensor) -> torch.Tensor:
        """Map a ``(B, 128, h, w)`` backbone map to a ``(B, feature_dim)`` vector, after ReLU."""
        fmap = self.check_input(fmap)
        pooled = [fmap.mean(dim=(2, 3))]
        cfm = self.compress(fmap)
        for grid in self.grids:
            pooled.append(nn.functional.adaptive_max_pool2d(cfm, grid).flatten(1))
            pooled.append(nn.functional.adaptive_avg_pool2d(cfm, grid).flatten(1))
        return self.dense(torch.cat(pooled, dim=1))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(B, 128, h, w)`` backbone map -> ``(B,)`` logits."""
        if self.head is None:
            raise ExposureNetError('semantic branch built with with_head=False has no '
                                   'logit; use features()')
        return self.head(self.features(fmap)).squeeze(-1)


class ExposureNet(nn.Module):
    """
    Exposure network, paper Sec. 4: histogram, semantic or hybrid.

    ``forward(hist, features)`` returns ``u`` of shape ``(B,)`` in ``[1 / m_exp, m_exp]``,
    the factor by which the next frame's exposure ``e = K * t_exp`` is multiplied (before
    the temporal filter, Eq. 5). Inputs:

    - ``hist``: ``(B, 256, 59)`` histograms, required by ``'histogram'`` and ``'hybrid'``;
    - ``features``: ``(B, 128, h, w)`` backbone ``layer2`` map, required by
      ``'semantic'`` and ``'hybrid'``.

    An input that the mode does not use is ignored. The branches are built without their
    own last layer; the common ``head`` (dense ``feature_dim -> 1``) plays that role, so a
    single-branch net is exactly the six-layer branch of the paper and the hybrid sums
    the two feature vectors before the head.

    ``num_parameters`` with the defaults (``feature_dim=64``): histogram 89,281, semantic
    291,227, hybrid 380,443 (the semantic dense layer 4,496 -> 64 holds 288k of them).
    """

    def __init__(self, mode: str = 'hybrid', feature_dim: int = 64, m_exp: float = 10.0,
                 hist_channels: Sequence[int] = (64, 64, 64), hist_hidden: int = 128,
                 semantic_channels: int = SEMANTIC_CHANNELS):
        super().__init__()
        if mode not in MODES:
            raise ExposureNetError(f'ExposureNet: mode must be one of {MODES}, got {mode!r}')
        if not m_exp > 1.0:
            raise ExposureNetError(f'ExposureNet: m_exp must be > 1, got {m_exp}')
        if not feature_dim >= 1:
            raise ExposureNetError(f'ExposureNet: feature_dim must be >= 1, got {feature_dim}')
        self.mode = mode
        self.m_exp = float(m_exp)
        self.feature_dim = feature_dim
        self.histogram = (HistogramBranch(feature_dim, hist_channels, hist_hidden,
                                          with_head=False)
                          if mode in ('hybrid', 'histogram') else None)
        self.semantic = (SemanticBranch(feature_dim, semantic_channels, with_head=False)
                         if mode in ('hybrid', 'semantic') else None)
        self.head = nn.Linear(feature_dim, 1)

    @property
    def uses_histogram(self) -> bool:
        return self.histogram is not None

    @property
    def uses_semantic(self) -> bool:
        return self.semantic is not None

    @property
    def num_parameters(self) -> int:
        """Count the trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def feature_vector(self, hist: Optional[torch.Tensor] = None,
                       features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Sum the enabled branches' ``(B, feature_dim)`` features (input of the head)."""
        parts = []
        if self.histogram is not None:
            if hist is None:
                raise ExposureNetError(f'ExposureNet(mode={self.mode!r}) needs hist '
                                       f'(B, {NUM_BINS}, {NUM_REGIONS}), got None')
            parts.append(self.histogram.features(hist))
        if self.semantic is not None:
            if features is None:
                raise ExposureNetError(f'ExposureNet(mode={self.mode!r}) needs features '
                                       f'(B, {self.semantic.in_channels}, h, w), got None')
            parts.append(self.semantic.features(features))
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            assert hist is not None and features is not None  # both branches ran
            raise ExposureNetError(f'ExposureNet: batch sizes differ, hist '
                                   f'{tuple(hist.shape)} vs features {tuple(features.shape)}')
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def logits(self, hist: Optional[torch.Tensor] = None,
               features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pre-activation output ``x`` of Eq. 4, shape ``(B,)``."""
        return self.head(self.feature_vector(hist, features)).squeeze(-1)

    def forward(self, hist: Optional[torch.Tensor] = None,
                features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Exposure change ``u`` of shape ``(B,)`` in ``[1 / m_exp, m_exp]`` (Eq. 4)."""
        return exposure_output(self.logits(hist, features), self.m_exp)

    def weight_l2(self) -> torch.Tensor:
        """
        Sum of squared weights (biases excluded), the paper's L2 penalty on the AE net.

        Multiply by the penalty weight and add to the detector loss (Sec. 5).
        """
        return sum((p.pow(2).sum() for n, p in self.named_parameters()
                    if n.endswith('weight')), self.head.weight.new_zeros(()))

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, m_exp={self.m_exp}, feature_dim={self.feature_dim}'

"""
P-IEANet (He et al., NeurIPS 2024, Sec. 3), written from the paper, and its ablations.

Input: processed RGB ``(B, 3, H, W)`` in [0, 1] (``H``, ``W`` multiples of
``2 * token_grid`` are not required: any even size works). Output: the exposure residual
``(B, 1, H, W)`` in ``(-1, 1)`` (tanh): negative = over-exposed, positive =
under-exposed, 0 = ideal. Global score ``10 * (1 - mean |residual|)`` (:func:`score`).

Pipeline (Fig. 4):

1. :class:`~neural_ae.core.assessment.dwt.HaarDWT`: low band ``L`` (3 ch) and high bands
   ``H`` (9 ch) at half resolution.
2. :class:`LightnessModule` on ``L`` (Sec. 3.2): a 3x3 stem to ``C`` channels ``L_c``;
   lightness channel attention (Eq. 5): ``A_c = sigmoid(conv(ReLU(conv(GAP(L_c)))))``,
   ``F_c = A_c * L_c``; lightness pixel attention (Eq. 6):
   ``A_p = sigmoid(sum_k w_k conv_k(ReLU(SA(F_c))))`` with ``k`` in {1, 3, 5, 7}, learnable
   ``w_k``, ``F_p = L_c * A_p``; ``A_o = MLP(F_c, F_p)`` (1x1 convs on the stacked maps).
3. :class:`StructureModule` on ``H`` (Sec. 3.1): a multi-layer encoder ``z_1..z_N`` (3x3
   conv + GELU each); per layer the 8-direction first-order gradient maps
   ``g_d(z) = z(p + d) - z(p)``, ``d`` in {+x, -x, +y, -y, +x+y, +x-y, -x+y, -x-y} (Eq. 2,
   replicate padding); a transformer long-range encoder (LRE) and a CNN short-range
   encoder (SRE) on ``z_i`` and on ``grad z_i`` (Eq. 3); fusion MLPs
   ``Z_f(l_i, s_i)``, ``Z_f(grad l_i, grad s_i)`` stacked over the layers and mixed into
   ``Z_o`` with ``3 C`` channels (the three detail bands of ``C`` feature channels) (Eq. 4).
4. Prediction (Sec. 3.3): ``P = tanh(MLP(IDWT(A_o, Z_o)))`` at full resolution.

The self-attention of the LRE and of the LPA runs on a ``token_grid x token_grid``
average-pooled token map (adaptive pooling), upsampled bilinearly and added back
(residual): long-range at a cost that does not grow with the square of the pixel count,
so the net runs on a CPU (the paper does not state its token layout).

Ablations (Table 3 of the paper), :class:`AssessorConfig` ``variant``:
``full``; ``no_lightness``: the low band reaches the inverse DWT through one 1x1 conv
(no attention module); ``no_structure``: the high bands reach it through one 1x1 conv
(no encoder, gradients, LRE/SRE); ``no_dwt``: a plain convolutional encoder-decoder of
similar size (stride-2 conv down, residual conv blocks, transposed conv up, same head),
no wavelet, no attention.
"""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List

from neural_ae.core.assessment.dwt import haar_dwt, haar_idwt
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.checks import check_shape
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['AssessorConfig', 'PIEANet', 'PlainEncoderDecoder', 'build_assessor', 'parameter_count',
           'gradient_maps', 'score', 'VARIANTS']

VARIANTS = ('full', 'no_lightness', 'no_structure', 'no_dwt')
_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))  # (dx, dy)


@dataclass(frozen=True)
class AssessorConfig:
    """
    Size and variant of the assessor network.

    ``channels`` feature width ``C`` [channels] (1..512); ``layers`` structure encoder
    layers ``N`` (1..8); ``heads`` attention heads (``channels`` divisible by it);
    ``token_grid`` side of the pooled attention token map [tokens] (2..64);
    ``variant`` one of :data:`VARIANTS`. The paper's size (about 2.7 M parameters) is
    ``channels=88, layers=4`` (2.78 M by :func:`parameter_count`); the shipped demo
    is smaller (its model card says which).
    """

    channels: int = 24
    layers: int = 2
    heads: int = 4
    token_grid: int = 16
    variant: str = 'full'

    def __post_init__(self):
        checks = (('channels', 1, 512), ('layers', 1, 8), ('heads', 1, 64),
                  ('token_grid', 2, 64))
        for key, lo, hi in checks:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise AssessmentError(f'AssessorConfig.{key} must be an integer in '
                                      f'[{lo}, {hi}], got {v!r}')
        if self.channels % self.heads:
            raise AssessmentError(f'AssessorConfig: channels ({self.channels}) must be '
                                  f'divisible by heads ({self.heads})')
        if self.variant not in VARIANTS:
            raise AssessmentError(f'AssessorConfig.variant must be one of {VARIANTS}, got '
                                  f'{self.variant!r}')

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (checkpoint metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> 'AssessorConfig':
        """Build from a dict; unknown keys are an error naming them."""
        if not isinstance(data, dict):
            raise AssessmentError(f'assessor config must be a mapping, got '
                                  f'{type(data).__name__}')
        known = {f.name for f in fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise AssessmentError(f'assessor config: unknown keys {bad}; known {sorted(known)}')
        return cls(**data)


def gradient_maps(z: torch.Tensor) -> torch.Tensor:
    """
    Eq. 2: first-order differences of ``z`` ``(B, C, H, W)`` in the eight directions.

    Returns ``(B, 8C, H, W)``, direction-major (``[:, dC:(d+1)C]`` is direction ``d`` of
    ``_DIRECTIONS``: +x, -x, +y, -y, +x+y, +x-y, -x+y, -x-y). Borders: replicate padding
    (the difference across the border is 0).
    """
    check_shape(z, ('B', 'C', 'H', 'W'), name='gradient_maps input', error=AssessmentError,
                kind='tensor')
    h, w = z.shape[-2:]
    p = F.pad(z, (1, 1, 1, 1), mode='replicate')
    out = [p[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - z for dx, dy in _DIRECTIONS]
    return torch.cat(out, dim=1)


class TokenAttention(nn.Module):
    """
    Pre-norm transformer block on a pooled ``grid x grid`` token map, added back upsampled.

    ``(B, C, H, W) -> (B, C, H, W)``: tokens = adaptive average pool to ``grid x grid``,
    multi-head self-attention + MLP (GELU, ratio 2), bilinear upsampling of the change.
    """

    def __init__(self, channels: int, heads: int, grid: int):
        super().__init__()
        self.grid = grid
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(),
                                 nn.Linear(2 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gh, gw = min(self.grid, h), min(self.grid, w)
        t = F.adaptive_avg_pool2d(x, (gh, gw)).flatten(2).transpose(1, 2)    # (B, N, C)
        q = self.norm1(t)
        u = t + self.attn(q, q, q, need_weights=False)[0]
        u = u + self.mlp(self.norm2(u))
        delta = (u - t).transpose(1, 2).reshape(b, c, gh, gw)
        return x + F.interpolate(delta, size=(h, w), mode='bilinear', align_corners=False)


class ShortRange(nn.Module):
    """CNN short-range encoder: two 3x3 convs with GELU, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.body(x))


def _mlp(cin: int, cout: int) -> nn.Sequential:
    """Per-pixel MLP (two 1x1 convs, GELU)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.GELU(), nn.Conv2d(cout, cout, 1))


class LightnessModule(nn.Module):
    """Sec. 3.2 on the low band ``(B, 3, h, w)`` -> ``A_o`` ``(B, C, h, w)``."""

    def __init__(self, cfg: AssessorConfig):
        super().__init__()
        c = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(c, c, 3, padding=1))
        r = max(c // 4, 1)
        self.lca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), nn.ReLU(),
                                 nn.Conv2d(r, c, 1), nn.Sigmoid())
        self.sa = TokenAttention(c, cfg.heads, cfg.token_grid)
        self.kernels = (1, 3, 5, 7)
        self.convs = nn.ModuleList(nn.Conv2d(c, 1, k, padding=k // 2) for k in self.kernels)
        self.kernel_weights = nn.Parameter(torch.full((len(self.kernels),),
                                                      1.0 / len(self.kernels)))
        self.fuse = _mlp(2 * c, c)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        lc = self.stem(low)
        fc = self.lca(lc) * lc                                              # Eq. 5
        s = F.relu(self.sa(fc))
        ap = torch.sigmoid(sum(w * conv(s) for w, conv in
                               zip(self.kernel_weights, self.convs)))      # Eq. 6
        fp = lc * ap
        return self.fuse(torch.cat([fc, fp], dim=1))


class StructureLayer(nn.Module):
    """One layer of Eq. 3-4: LRE and SRE on ``z`` and on its gradient maps, fused."""

    def __init__(self, cfg: AssessorConfig):
        super().__init__()
        c = cfg.channels
        self.grad_in = nn.Conv2d(8 * c, c, 1)
        self.lre = TokenAttention(c, cfg.heads, cfg.token_grid)
        self.sre = ShortRange(c)
        self.grad_lre = TokenAttention(c, cfg.heads, cfg.token_grid)
        self.grad_sre = ShortRange(c)
        self.fuse = _mlp(2 * c, c)
        self.grad_fuse = _mlp(2 * c, c)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        g = self.grad_in(gradient_maps(z))
        a = self.fuse(torch.cat([self.lre(z), self.sre(z)], dim=1))
        b = self.grad_fuse(torch.cat([self.grad_lre(g), self.grad_sre(g)], dim=1))
        return torch.cat([a, b], dim=1)


class StructureModule(nn.Module):
    """Sec. 3.1 on the high bands ``(B, 9, h, w)`` -> ``Z_o`` ``(B, 3C, h, w)``."""

    def __init__(self, cfg: AssessorConfig):
        super().__init__()
        c = cfg.channels
        self.encoder = nn.ModuleList()
        for i in range(cfg.layers):
            self.encoder.append(nn.Sequential(nn.Conv2d(9 if i == 0 else c, c, 3, padding=1),
                                              nn.GELU()))
        self.layers = nn.ModuleList(StructureLayer(cfg) for _ in range(cfg.layers))
        self.out = _mlp(2 * c * cfg.layers, 3 * c)

    def forward(self, high: torch.Tensor) -> torch.Tensor:
        z = high
        feats: List[torch.Tensor] = []
        for enc, layer in zip(self.encoder, self.layers):
            z = enc(z)
            feats.append(layer(z))
        return self.out(torch.cat(feats, dim=1))


class _Head(nn.Module):
    """Prediction MLP at full resolution: ``(B, C, H, W) -> tanh -> (B, 1, H, W)``."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(c, c, 1), nn.GELU(), nn.Conv2d(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))


def _check_input(x: torch.Tensor) -> None:
    _, c, h, w = check_shape(x, ('B', 3, 'H', 'W'), name='assessor input (RGB in [0, 1])',
                             error=AssessmentError, kind='tensor')
    if h % 2 or w % 2 or h < 4 or w < 4:
        raise AssessmentError(f'assessor input: height and width must be even and >= 4, got '
                              f'{tuple(x.shape)}')


class PIEANet(nn.Module):
    """The DWT variants (``full``, ``no_lightness``, ``no_structure``), module docstring."""

    def __init__(self, cfg: AssessorConfig):
        super().__init__()
        if cfg.variant == 'no_dwt':
            raise AssessmentError('PIEANet: variant no_dwt is PlainEncoderDecoder '
                                  '(use build_assessor)')
        self.config = cfg
        c = cfg.channels
        self.lightness: nn.Module = (nn.Conv2d(3, c, 1) if cfg.variant == 'no_lightness'
                                     else LightnessModule(cfg))
        self.structure: nn.Module = (nn.Conv2d(9, 3 * c, 1) if cfg.variant == 'no_structure'
                                     else StructureModule(cfg))
        self.head = _Head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x)
        low, high = haar_dwt(x)
        return self.head(haar_idwt(self.lightness(low), self.structure(high)))


class PlainEncoderDecoder(nn.Module):
    """Ablation ``no_dwt``: stride-2 conv encoder, residual blocks, transposed-conv decoder."""

    def __init__(self, cfg: AssessorConfig):
        super().__init__()
        self.config = cfg
        c = (3 * cfg.channels) // 2
        self.down = nn.Sequential(nn.Conv2d(3, c, 4, stride=2, padding=1), nn.GELU())
        self.blocks = nn.Sequential(*[ShortRange(c) for _ in range(2 * cfg.layers + 1)])
        self.up = nn.ConvTranspose2d(c, cfg.channels, 2, stride=2)
        self.head = _Head(cfg.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x)
        return self.head(self.up(self.blocks(self.down(x))))


def build_assessor(cfg: AssessorConfig) -> nn.Module:
    """Build the network of ``cfg.variant``."""
    return PlainEncoderDecoder(cfg) if cfg.variant == 'no_dwt' else PIEANet(cfg)


def parameter_count(model: nn.Module) -> int:
    """Count the trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def score(residual: torch.Tensor) -> torch.Tensor:
    """Global score ``10 (1 - mean |residual|)`` per image: ``(B, 1, H, W) -> (B,)``, [0, 10]."""
    check_shape(residual, ('B', 1, 'H', 'W'), name='score residual', error=AssessmentError,
                kind='tensor')
    return 10.0 * (1.0 - residual.abs().mean(dim=(1, 2, 3)))

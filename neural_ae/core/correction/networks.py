"""
Post-capture exposure-correction networks (issue 14): the encoder-decoder and pix2pix.

Both correct a display-referred RGB frame ``(B, 3, H, W)`` in [0, 1] (the ISP's output)
into a well-exposed RGB frame of the same shape and range (sigmoid output). ``H`` and
``W`` must be multiples of ``2 ** (len(widths) - 1)`` (16 for five stages); the detector's
192 x 320 input and the 128 x 128 training crops are.

- :class:`CorrectionUNet` with ``noise=False``: the exposure-normalization
  encoder-decoder of Chung et al. (paper 002): an encoder of stride-2 stages, a decoder
  with a skip connection from every encoder stage and from the input image, leaky ReLU
  (slope ``leak``, the paper's 0.3), batch norm in the decoder only, **resize-conv**
  upsampling (bilinear x2 then a 3 x 3 convolution: the paper reports checkerboard
  artifacts from deconvolution), sigmoid output. The paper's encoder is an ImageNet
  VGG-16; none can be downloaded here, so the encoder trains from scratch. One addition
  of ours: a global-context branch at the bottleneck (spatial mean, 1 x 1 convolution,
  added back everywhere), standing in for the paper's 7 x 7 x 512 bottleneck that sees
  the whole 224 x 224 image; exposure is a global property.
- :class:`CorrectionUNet` with ``noise=True``: the pix2pix U-Net generator of Le Jeune
  (paper 003) with a learnable-scale noise injection (:class:`NoiseInjection`) after
  every convolution; trained against :class:`PatchDiscriminator`.
- :class:`PatchDiscriminator`: conditional PatchGAN (input and output concatenated),
  spectral normalization on every convolution, least-squares outputs (no sigmoid);
  :func:`patch_receptive_field` gives its receptive field (``n_layers`` 2, 3, 4: 34, 70,
  142 px; the paper's best is 140).
"""
from typing import cast, List, Sequence

from neural_ae.core.checks import check_shape
from neural_ae.core.errors import ModelError
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['CorrectionUNet', 'NoiseInjection', 'PatchDiscriminator', 'patch_receptive_field',
           'param_count']


class NoiseInjection(nn.Module):
    """
    ``x + scale * n``, ``n ~ N(0, 1)`` per pixel (shared over channels), ``scale`` per channel.

    ``scale`` starts at 0 (a no-op until training moves it). In ``eval()`` mode the noise
    is drawn from a generator seeded once per call (``eval_seed``), so inference is
    deterministic; in training mode from the global torch generator.
    """

    def __init__(self, channels: int, eval_seed: int = 0):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eval_seed = int(eval_seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.training:
            n = torch.randn(b, 1, h, w, dtype=x.dtype, device=x.device)
        else:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(self.eval_seed)
            n = torch.randn(b, 1, h, w, dtype=x.dtype, device=x.device, generator=gen)
        return x + self.scale * n


def _conv(cin: int, cout: int, stride: int, leak: float, noise: bool, norm: bool,
          seed: int) -> nn.Sequential:
    layers: List[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1,
                                         bias=not norm)]
    if noise:
        layers.append(NoiseInjection(cout, seed))
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(leak, inplace=True))
    return nn.Sequential(*layers)


class CorrectionUNet(nn.Module):
    """
    Encoder-decoder with skips from every encoder stage and from the input image.

    ``widths[i]`` channels at stride ``2 ** i``: stage 0 is two 3 x 3 convolutions at full
    resolution, stage ``i > 0`` a stride-2 convolution and a 3 x 3 convolution. The decoder
    goes back up stage by stage (resize-conv, concatenation with the encoder stage of the
    same resolution, two 3 x 3 convolutions with batch norm); at full resolution it also
    concatenates the input image, then a 1 x 1 convolution and a sigmoid. Input and
    output: ``(B, 3, H, W)`` RGB in [0, 1], ``H, W`` multiples of ``2 ** (len(widths) -
    1)``. ``residual=True`` predicts the output as ``sigmoid(logit(x) + head)`` (a
    correction of the input's logit), which starts near the identity.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96, 128), leak: float = 0.3,
                 noise: bool = False, global_context: bool = True, residual: bool = False):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ModelError(f'CorrectionUNet needs >= 2 positive widths, got {widths}')
        self.widths = widths
        self.leak = float(leak)
        self.noise = bool(noise)
        self.residual = bool(residual)
        self.multiple = 2 ** (len(widths) - 1)
        seed = iter(range(10_000))
        enc = []
        cin = 3
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            enc.append(nn.Sequential(_conv(cin, w, stride, leak, noise, False, next(seed)),
                                     _conv(w, w, 1, leak, noise, False, next(seed))))
            cin = w
        self.encoder = nn.ModuleList(enc)
        self.context = nn.Conv2d(widths[-1], widths[-1], 1) if global_context else None
        dec = []
        for i in range(len(widths) - 2, -1, -1):
            up = nn.Conv2d(widths[i + 1], widths[i], 3, padding=1)
            extra = 3 if i == 0 else 0
            dec.append(nn.ModuleDict({
                'up': up,
                'fuse': nn.Sequential(
                    _conv(2 * widths[i] + extra, widths[i], 1, leak, noise, True, next(seed)),
                    _conv(widths[i], widths[i], 1, leak, noise, True, next(seed)))}))
        self.decoder = nn.ModuleList(dec)
        self.head = nn.Conv2d(widths[0], 3, 1)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            if self.head.bias is not None:
                nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Correct ``x`` ``(B, 3, H, W)`` in [0, 1]; returns the same shape in (0, 1)."""
        check_shape(x, ('B', 3, 'H', 'W'), name='image to correct', error=ModelError,
                    kind='tensor')
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ModelError(f'image to correct: height and width must be multiples of '
                             f'{self.multiple}, got {h} x {w}')
        skips = []
        y = x
        for stage in self.encoder:
            y = stage(y)
            skips.append(y)
        if self.context is not None:
            y = y + self.context(y.mean(dim=(2, 3), keepdim=True))
        for j, module in enumerate(self.decoder):
            block = cast(nn.ModuleDict, module)
            i = len(self.widths) - 2 - j
            y = F.interpolate(y, scale_factor=2.0, mode='bilinear', align_corners=False)
            y = F.leaky_relu(block['up'](y), self.leak)
            parts = [y, skips[i]] + ([x] if i == 0 else [])
            y = block['fuse'](torch.cat(parts, dim=1))
        out = self.head(y)
        if self.residual:
            xc = x.clamp(1e-3, 1 - 1e-3)
            out = out + torch.log(xc / (1 - xc))
        return torch.sigmoid(out)


def patch_receptive_field(n_layers: int) -> int:
    """
    Receptive field [px] of :class:`PatchDiscriminator` with ``n_layers`` stride-2 layers.

    The layers are ``n_layers`` 4 x 4 stride-2 convolutions, then two 4 x 4 stride-1
    convolutions (pix2pix's layout): ``n_layers`` 1, 2, 3, 4, 5 give 16, 34, 70, 142, 286.
    """
    rf = 1
    kernels = [(4, 2)] * int(n_layers) + [(4, 1), (4, 1)]
    for k, s in reversed(kernels):
        rf = (rf - 1) * s + k
    return rf


class PatchDiscriminator(nn.Module):
    """
    Conditional PatchGAN: ``D(input, image) -> (B, 1, h, w)`` least-squares scores.

    ``input``, ``image``: ``(B, 3, H, W)`` in [0, 1] (concatenated, so D judges the pair).
    Every convolution is spectrally normalized (:func:`torch.nn.utils.parametrizations.
    spectral_norm`), leaky ReLU 0.2, no batch norm (spectral normalization replaces it).
    Receptive field: :func:`patch_receptive_field` of ``n_layers``.
    """

    def __init__(self, n_layers: int = 4, width: int = 32, max_width: int = 128):
        super().__init__()
        if not 1 <= int(n_layers) <= 6:
            raise ModelError(f'PatchDiscriminator n_layers must be in [1, 6], got {n_layers}')
        sn = nn.utils.parametrizations.spectral_norm
        layers = []
        cin = 6
        for i in range(int(n_layers)):
            cout = min(width * 2 ** i, max_width)
            layers += [sn(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        cout = min(cin * 2, max_width)
        layers += [sn(nn.Conv2d(cin, cout, 4, stride=1, padding=1)), nn.LeakyReLU(0.2),
                   sn(nn.Conv2d(cout, 1, 4, stride=1, padding=1))]
        self.net = nn.Sequential(*layers)
        self.n_layers = int(n_layers)
        self.receptive_field = patch_receptive_field(n_layers)

    def forward(self, inp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Score ``image`` as a correction of ``inp`` per patch (real: 1, fake: 0)."""
        return self.net(torch.cat([inp, image], dim=1))


def param_count(module: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

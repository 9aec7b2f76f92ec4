"""
Faster R-CNN detector whose backbone also feeds the semantic exposure branch.

The paper's detector and semantic AE branch share the ResNet feature extractor: one
backbone pass per frame serves both (Sec. 4.2). :class:`DetectorWithFeatures` is
torchvision's :class:`~torchvision.models.detection.FasterRCNN` with a forward that also
returns the backbone's ``layer2`` map (128 channels, stride 8), the live tensor of the
same pass, so a loss on the exposure network trains the backbone through it.

Design choices (all in :class:`DetectorConfig`):

- Backbone: ResNet-18 layout (stem, 4 stages of 2 torchvision ``BasicBlock``) trained
  from scratch (no pretrained weights exist here). ``widths`` sets the channels of the
  stem and the stages; the default ``(32, 32, 128, 128, 256)`` keeps ``layer2`` at the 128
  channels the semantic branch taps, and narrows the rest to fit CPU training. With
  ``(64, 64, 128, 256, 512)`` the state-dict keys and shapes of the trunk are those of
  ``torchvision.models.resnet18`` (without ``fc``).
- Normalisation: ``GroupNorm`` (2-4 channels per group, at most 32 groups) by default.
  Batches are 1-2 frames, trained from scratch, under exposures that change during
  training: BatchNorm's batch statistics are noisy at batch 2, its running statistics
  lag behind the changing brightness distribution, and train and eval behave
  differently. GroupNorm is per-image, identical in train and eval, and independent of
  the batch. Its cost: being per image, it removes a pure gain of a feature map, so
  absolute brightness reaches ``layer2`` only through what exposure changes beyond a
  gain (the ``image_mean`` offset, the tone curve's clipping, noise). A probe at
  initialisation still found the spatial mean of ``layer2`` varying about 200x more
  across exposures (x0.1 .. x10) than across scenes, so the semantic branch does see
  exposure. ``norm='batch'`` is available for comparison. The last norm of each
  residual block starts at zero (identity blocks), which helps training from scratch.
- FPN over ``layer2..layer4`` (strides 8, 16, 32) plus a max-pooled level (64), one
  anchor size per level, ``((16,), (32,), (64,), (128,))`` for the small objects of
  ~256 x 384 frames.
- Transform: the ISP delivers RGB in [0, 1]; ``image_mean = 0.5`` and ``image_std =
  0.25`` centre it. ``min_size = 256``, ``max_size = 384`` leave 256 x 384 frames at scale
  1 (other sizes are rescaled so the short side is 256 unless the long side would pass
  384). Smaller RPN/ROI budgets than torchvision's defaults keep CPU training fast.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from neural_ae.core.classes import CLASSES
from neural_ae.core.errors import ModelError
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.resnet import BasicBlock, conv1x1
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

NORMS = ('group', 'batch')
Images = Union[torch.Tensor, Sequence[torch.Tensor]]


class DetectorError(ModelError, ValueError):
    """Bad detector configuration or input (image shape/dtype, targets, mode)."""


@dataclass(frozen=True)
class DetectorConfig:
    """
    Settings of :func:`build_detector`; the defaults target CPU training at 256 x 384.

    ``widths``: channels of (stem, layer1, layer2, layer3, layer4); ``layer2`` is the
    map handed to the semantic branch. ``fpn_layers``: stages feeding the FPN (a max-pool
    level is added on top), so ``len(anchor_sizes) == len(fpn_layers) + 1``. The RPN's
    ``pre_nms_top_n`` values are per FPN level, ``post_nms_top_n`` per image.
    """

    num_classes: int = len(CLASSES) + 1
    min_size: int = 256
    max_size: int = 384
    widths: Tuple[int, int, int, int, int] = (32, 32, 128, 128, 256)
    norm: str = 'group'
    gn_groups: int = 32
    fpn_layers: Tuple[int, ...] = (2, 3, 4)
    fpn_channels: int = 128
    anchor_sizes: Tuple[Tuple[int, ...], ...] = ((16,), (32,), (64,), (128,))
    aspect_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)
    image_mean: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: Tuple[float, float, float] = (0.25, 0.25, 0.25)
    rpn_pre_nms_top_n_train: int = 600
    rpn_post_nms_top_n_train: int = 300
    rpn_pre_nms_top_n_test: int = 300
    rpn_post_nms_top_n_test: int = 100
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 128
    box_detections_per_img: int = 100
    box_score_thresh: float = 0.05
    representation_size: int = 512

    def __post_init__(self):
        if self.num_classes < 2:
            raise DetectorError(f'num_classes counts the background and must be >= 2, '
                                f'got {self.num_classes}')
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise DetectorError(f'widths must be 5 positive channel counts (stem, layer1..4),'
                                f' got {self.widths}')
        if not self.fpn_layers or sorted(set(self.fpn_layers)) != list(self.fpn_layers) or \
                not set(self.fpn_layers) <= {1, 2, 3, 4}:
            raise DetectorError(f'fpn_layers must be increasing stage numbers in 1..4, '
                                f'got {self.fpn_layers}')
        if len(self.anchor_sizes) != len(self.fpn_layers) + 1:
            raise DetectorError(f'need one anchor size tuple per FPN level '
                                f'({len(self.fpn_layers) + 1}), got {self.anchor_sizes}')
        if self.norm not in NORMS:
            raise DetectorError(f'norm must be one of {NORMS}, got {self.norm!r}')
        if not 0 < self.min_size <= self.max_size:
            raise DetectorError(f'need 0 < min_size <= max_size, got {self.min_size}, '
                                f'{self.max_size}')

    @property
    def layer2_channels(self) -> int:
        return self.widths[2]


def detector_config_for(height: int, width: int, overrides: Optional[dict] = None
                        ) -> DetectorConfig:
    """
    :class:`DetectorConfig` for ``height x width`` [px] frames plus ``overrides``.

    The input size defaults to the frame size (``min_size = min(h, w)``, ``max_size =
    max(h, w)``); ``overrides`` (e.g. the ``detector:`` mapping of a training config,
    lists allowed for tuples) wins. Raises ``TypeError`` / :class:`DetectorError` for
    unknown keys or bad values.
    """
    def tupled(v):
        return tuple(tupled(x) for x in v) if isinstance(v, list) else v

    values = {'min_size': min(int(height), int(width)), 'max_size': max(int(height), int(width))}
    values.update(overrides or {})
    return DetectorConfig(**{k: tupled(v) for k, v in values.items()})


def _group_count(channels: int, target: int) -> int:
    """Largest divisor of ``channels`` <= ``target`` leaving >= 2 channels per group."""
    groups = max(1, min(target, channels // 2))
    while channels % groups:
        groups -= 1
    return groups


def norm_factory(norm: str = 'group', gn_groups: int = 32) -> Callable[[int], nn.Module]:
    """Return ``channels -> normalisation module`` for ``'group'`` or ``'batch'``."""
    if norm == 'group':
        return lambda c: nn.GroupNorm(_group_count(c, gn_groups), c)
    if norm == 'batch':
        return nn.BatchNorm2d
    raise DetectorError(f'norm must be one of {NORMS}, got {norm!r}')


class ResNetTrunk(nn.Module):
    """
    ResNet-18-style feature extractor: stem + ``layer1..layer4`` of 2 ``BasicBlock`` each.

    Input ``(B, 3, H, W)``; ``layerN`` has ``widths[N]`` channels at stride
    ``2 ** (N + 1)`` (4, 8, 16, 32). Attribute names follow ``torchvision.models.resnet``.
    """

    def __init__(self, widths: Sequence[int] = (64, 64, 128, 256, 512),
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 zero_init_residual: bool = True):
        super().__init__()
        self.widths = tuple(widths)
        self._norm = norm_layer
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(widths[0], widths[1], stride=1)
        self.layer2 = self._make_layer(widths[1], widths[2], stride=2)
        self.layer3 = self._make_layer(widths[2], widths[3], stride=2)
        self.layer4 = self._make_layer(widths[3], widths[4], stride=2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_ch != out_ch:
            downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), self._norm(out_ch))
        return nn.Sequential(
            BasicBlock(in_ch, out_ch, stride, downsample, norm_layer=self._norm),
            BasicBlock(out_ch, out_ch, norm_layer=self._norm))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor, upto: int = 4) -> List[torch.Tensor]:
        """Return ``[layer1, ..., layer<upto>]`` outputs of one pass."""
        outs = []
        x = self.stem(x)
        for index in range(1, upto + 1):
            x = getattr(self, f'layer{index}')(x)
            outs.append(x)
        return outs


class SharedBackbone(nn.Module):
    """
    Trunk + FPN with the ``layer2`` tap; torchvision's backbone protocol.

    ``forward(x)`` returns the FPN maps (``OrderedDict`` ``'0', '1', ..., 'pool'``, all
    ``out_channels``), as :class:`FasterRCNN` expects; :meth:`forward_with_tap` returns
    the same maps and the ``(B, 128, H/8, W/8)`` ``layer2`` map of the same pass.
    """

    def __init__(self, trunk: ResNetTrunk, fpn_layers: Sequence[int] = (2, 3, 4),
                 out_channels: int = 128):
        super().__init__()
        self.body = trunk
        self.fpn_layers = tuple(fpn_layers)
        self.out_channels = out_channels
        self.fpn = FeaturePyramidNetwork([trunk.widths[i] for i in self.fpn_layers],
                                         out_channels, extra_blocks=LastLevelMaxPool())

    @property
    def level_names(self) -> List[str]:
        """FPN level names used by the RoI pooler (the max-pool level excluded)."""
        return [str(k) for k in range(len(self.fpn_layers))]

    def forward_with_tap(self, x: torch.Tensor
                         ) -> Tuple['OrderedDict[str, torch.Tensor]', torch.Tensor]:
        stages = self.body(x, upto=max(2, self.fpn_layers[-1]))
        inputs = OrderedDict((str(k), stages[layer - 1])
                             for k, layer in enumerate(self.fpn_layers))
        return self.fpn(inputs), stages[1]

    def forward(self, x: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
        return self.forward_with_tap(x)[0]

    def layer2(self, x: torch.Tensor) -> torch.Tensor:
        """Run only the stem, ``layer1`` and ``layer2`` (the semantic branch's input)."""
        return self.body(x, upto=2)[1]


def _check_images(images: Images) -> List[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise DetectorError(f'detector: expected images of shape (B, 3, H, W) or a list '
                                f'of (3, H, W), got {tuple(images.shape)}')
        images = list(images.unbind(0))
    if not isinstance(images, (list, tuple)) or not images:
        raise DetectorError(f'detector: expected a (B, 3, H, W) tensor or a non-empty list '
                            f'of (3, H, W) tensors, got {type(images).__name__}')
    for k, img in enumerate(images):
        if not isinstance(img, torch.Tensor) or not img.is_floating_point():
            kind = img.dtype if isinstance(img, torch.Tensor) else type(img).__name__
            raise DetectorError(f'detector: image {k} must be a float tensor, got {kind}')
        if img.dim() != 3 or img.shape[0] != 3 or min(img.shape[1:]) < 1:
            raise DetectorError(f'detector: image {k} must have shape (3, H, W), '
                                f'got {tuple(img.shape)}')
    return list(images)


def _check_targets(targets, count: int) -> None:
    if targets is None:
        raise DetectorError('detector: targets are required in training mode '
                            '(call model.eval() for detections)')
    if len(targets) != count:
        raise DetectorError(f'detector: {count} images but {len(targets)} targets')
    for k, t in enumerate(targets):
        boxes, labels = t.get('boxes'), t.get('labels')
        if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
            shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes)
            raise DetectorError(f'detector: target {k} boxes must be (N, 4) xyxy, got {shape}')
        if not isinstance(labels, torch.Tensor) or labels.shape != boxes.shape[:1]:
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels)
            raise DetectorError(f'detector: target {k} labels must be ({boxes.shape[0]},), '
                                f'got {shape}')
        bad = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if bad.any():
            raise DetectorError(f'detector: target {k} has a box without positive width and '
                                f'height: {boxes[bad][0].tolist()}')


class DetectorWithFeatures(FasterRCNN):
    """
    Faster R-CNN returning the backbone's ``layer2`` map of the same forward pass.

    ``forward(images, targets=None)``:

    - ``images``: ``(B, 3, H, W)`` tensor or list of ``(3, H, W)`` float RGB in [0, 1]
      (the ISP's output). Gradients flow back into them.
    - ``targets`` (training mode only): one dict per image, ``boxes`` ``(N, 4)`` float
      xyxy in input pixels, ``labels`` ``(N,)`` int64 in ``1 .. num_classes - 1``.
    - returns ``(losses, layer2)`` in training mode (``losses``: dict of scalar tensors
      ``loss_classifier``, ``loss_box_reg``, ``loss_objectness``, ``loss_rpn_box_reg``), or
      ``(detections, layer2)`` in eval mode (``detections``: one dict per image with
      ``boxes`` ``(K, 4)`` xyxy in input pixels, ``scores`` ``(K,)``, ``labels`` ``(K,)``).
      ``layer2`` is ``(B, 128, H'/8, W'/8)`` in the transformed image space: resized by
      the transform (no resize for 256 x 384 with the defaults), normalised with
      ``image_mean``/``image_std``, zero-padded to a multiple of 32. It is the live tensor:
      a loss computed from it back-propagates into the backbone.

    Exactly one backbone pass per call.
    """

    def __init__(self, config: DetectorConfig, backbone: SharedBackbone, **kwargs):
        super().__init__(backbone, **kwargs)
        self.config = config

    @property
    def layer2_channels(self) -> int:
        return self.backbone.body.widths[2]

    def forward(self, images: Images, targets: Optional[List[Dict[str, torch.Tensor]]] = None
                ) -> Tuple[Union[Dict[str, torch.Tensor], List[Dict[str, torch.Tensor]]],
                           torch.Tensor]:
        image_list = _check_images(images)
        if self.training:
            _check_targets(targets, len(image_list))
        else:
            targets = None
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in image_list]
        batch, targets = self.transform(image_list, targets)
        features, layer2 = self.backbone.forward_with_tap(batch.tensors)
        proposals, proposal_losses = self.rpn(batch, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, batch.image_sizes,
                                                     targets)
        if self.training:
            return {**detector_losses, **proposal_losses}, layer2
        detections = self.transform.postprocess(detections, batch.image_sizes, original_sizes)
        return detections, layer2

    def semantic_features(self, images: Images) -> torch.Tensor:
        """
        Return the ``layer2`` map only (stem + ``layer1`` + ``layer2``, no FPN or heads).

        For frames that feed the exposure network but are not detected, e.g. the first
        frame of a training pair. Same transform as :meth:`forward`.
        """
        image_list = _check_images(images)
        batch, _ = self.transform(image_list, None)
        return self.backbone.layer2(batch.tensors)


def build_detector(config: Optional[DetectorConfig] = None) -> DetectorWithFeatures:
    """Build a randomly initialised :class:`DetectorWithFeatures` (``weights=None``)."""
    cfg = config if config is not None else DetectorConfig()
    trunk = ResNetTrunk(cfg.widths, norm_factory(cfg.norm, cfg.gn_groups))
    backbone = SharedBackbone(trunk, cfg.fpn_layers, cfg.fpn_channels)
    anchors = AnchorGenerator(sizes=tuple(tuple(s) for s in cfg.anchor_sizes),
                              aspect_ratios=(tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes))
    roi_pool = MultiScaleRoIAlign(featmap_names=backbone.level_names, output_size=7,
                                  sampling_ratio=2)
    box_head = TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.representation_size)
    return DetectorWithFeatures(
        cfg, backbone,
        min_size=cfg.min_size, max_size=cfg.max_size,
        image_mean=list(cfg.image_mean), image_std=list(cfg.image_std),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        box_roi_pool=roi_pool, box_head=box_head,
        box_predictor=FastRCNNPredictor(cfg.representation_size, cfg.num_classes),
        box_batch_size_per_image=cfg.box_batch_size_per_image,
        box_detections_per_img=cfg.box_detections_per_img,
        box_score_thresh=cfg.box_score_thresh)


def detector_inference(model: DetectorWithFeatures, images: Images
                       ) -> Tuple[List[Dict[str, torch.Tensor]], torch.Tensor]:
    """
    Detect without gradients: ``(detections, layer2)`` as in eval-mode ``forward``.

    Switches ``model`` to eval mode for the call and restores its previous mode.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(images)
    finally:
        model.train(was_training)


def count_parameters(module: nn.Module) -> int:
    """Count the trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

"""
The evaluated methods: each exposure controller with the detector that belongs to it.

What a controller is comes from the registry (:mod:`neural_ae.core.controllers.registry`):
the methods are the registered live controllers (:func:`method_names`), the baselines
those of them without a learned model (:func:`baseline_names`); labels, training modes
and feature needs are the specs'. The oracle comes on top (:mod:`.oracle`).

Table 2 logic (:func:`build_methods`): each trained controller uses the detector trained
jointly with its network (the checkpoint whose ``ae`` is its ``train_mode``); the other
controllers use the detector fine-tuned with them, falling back along
:func:`detector_chain` with a warning. Checkpoints are found by
:func:`discover_checkpoints` and read through the training checkpoint loader (the
package's one ``torch.load``).
"""
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from neural_ae.core import sensor as S
from neural_ae.core.controllers import ControllerOptions
from neural_ae.core.controllers.registry import controller_names, ControllerSpec, find_spec, \
    get_spec
from neural_ae.core.errors import ControllerError, EvaluationError, ModelError, TrainingError
from neural_ae.core.evaluation.common import ItemAccess
from neural_ae.core.models.perception import Perception
import torch

__all__ = ['baseline_names', 'build_methods', 'BuiltMethods', 'CheckpointInfo',
           'DETECTOR_FALLBACKS', 'detector_chain', 'discover_checkpoints', 'Method',
           'method_label', 'method_names', 'UNTRAINED_NET_DETECTORS']

LOG = logging.getLogger(__name__)


def method_names() -> tuple:
    """Return the controllers evaluated: the registered live ones (the oracle comes on top)."""
    return controller_names(live=True)


def baseline_names() -> tuple:
    """Return the baselines: the registered live controllers without a learned model."""
    return controller_names(live=True, trained=False)


def method_label(key: str) -> str:
    """Human name of a method key such as ``'hybrid_nn'`` or ``'hybrid_nn+adaptive'``."""
    base, _, smoothing = key.partition('+')
    spec = find_spec(base)
    label = spec.label if spec is not None else base
    return f'{label} ({smoothing})' if smoothing else label


def _train_mode(name: str) -> str:
    """Return the ``ae`` mode of the training run that belongs to controller ``name``."""
    spec = find_spec(name)
    return spec.train_mode if spec is not None and spec.train_mode else name


@dataclass
class Method:
    """
    One evaluated exposure controller with the detector that belongs to it.

    ``name``: a controller name (:func:`method_names`); ``perception``: its ISP +
    detector; ``detector_from``: the training run / checkpoint of that detector (for the
    tables); ``model``: the AE network (trained controllers); ``notes``: fallbacks and
    caveats (shown loudly in the report); ``untrained``: the AE network has random weights.
    """

    name: str
    perception: Perception
    detector_from: str
    model: Optional[torch.nn.Module] = None
    notes: List[str] = field(default_factory=list)
    untrained: bool = False
    device: str = 'cpu'
    backend: str = 'torch'
    checkpoint: Optional[Path] = None
    deploy_dir: Optional[str] = None

    @property
    def spec(self) -> ControllerSpec:
        """Return the controller's registry entry."""
        return get_spec(self.name)

    @property
    def needs_features(self) -> bool:
        """Whether the controller reads the backbone's ``layer2`` map."""
        return self.spec.needs_features

    def controller(self, sensor, smoothing: Optional[str] = None, **options):
        """Build a fresh controller; ``smoothing`` and ``options`` go to ControllerOptions."""
        opts = ControllerOptions(smoothing=smoothing, **options)
        backend = self.backend if self.model is not None else 'torch'
        return self.spec.build(opts, sensor, model=self.model, device=self.device,
                               backend=backend, deploy_dir=self.deploy_dir,
                               checkpoint=self.checkpoint)


@dataclass
class CheckpointInfo:
    """A training checkpoint found on disk: its path, ``ae`` mode, config, model card."""

    path: Path
    ae: str
    config: object
    card: Optional[Path] = None
    metrics: dict = field(default_factory=dict)


def _other_kind(path: Path) -> bool:
    """Whether ``path`` is another neural_ae model kind (assessor, corrector, ...): not ours."""
    from neural_ae.core.checkpoints import checkpoint_format, TRAIN_FORMAT
    from neural_ae.core.errors import ModelError

    try:
        fmt = checkpoint_format(path)
    except (ModelError, TrainingError):
        return False                       # unreadable: read() reports it
    other = fmt is not None and fmt.startswith('neural_ae') and fmt != TRAIN_FORMAT
    if other:
        LOG.debug('%s is a %s model, not an exposure training checkpoint; not evaluated',
                  path, fmt)
    return other


def discover_checkpoints(models_dir, explicit: Optional[Dict[str, str]] = None) -> dict:
    """
    Map training ``ae`` mode -> :class:`CheckpointInfo` for the checkpoints in a folder.

    Reads every ``*.pt`` under ``models_dir`` with the training checkpoint loader (files
    that are not training checkpoints are skipped with a log line); ``explicit`` maps a
    controller name to a checkpoint path and wins. Several checkpoints of one mode: the
    first by file name is used and the others are listed in ``'_ignored'``.
    """
    from neural_ae.core.training.checkpoints import load_checkpoint
    from neural_ae.core.training.config import config_from_dict

    found: Dict[str, Any] = {}
    ignored: List[str] = []
    unreadable: List[str] = []

    def read(path: Path) -> Optional[CheckpointInfo]:
        try:
            ck = load_checkpoint(path)
        except TrainingError as err:
            LOG.warning('skipping %s: %s', path, err)
            unreadable.append(f'{path}: {err}')
            return None
        cfg = config_from_dict(ck['config'], source=f'{path} (embedded config)')
        card = path.with_suffix('.md')
        return CheckpointInfo(path, str(ck.get('ae', cfg.ae)), cfg,
                              card if card.is_file() else None, ck.get('metrics') or {})

    for name, p in (explicit or {}).items():
        own = find_spec(name)
        if own is not None and own.detector_from:
            continue                   # its own model kind: build_methods loads it
        path = Path(p)
        if not path.is_file():
            raise EvaluationError(f'checkpoint for {name} not found: {path}')
        info = read(path)
        if info is None:
            raise EvaluationError(f'{path} (given for {name}) is not a neural_ae training '
                                  f'checkpoint')
        found[_train_mode(name)] = info
    folder = Path(models_dir)
    if folder.is_dir():
        for path in sorted(folder.glob('*.pt')):
            if any(path == i.path for i in found.values()):
                continue
            if _other_kind(path):
                continue
            info = read(path)
            if info is None:
                continue
            if info.ae in found:
                ignored.append(str(path))
                continue
            found[info.ae] = info
    found['_ignored'] = ignored
    found['_unreadable'] = unreadable
    return found


DETECTOR_FALLBACKS = {
    'average': ('fixed', 'hybrid', 'gradient', 'histogram', 'semantic'),
    'gradient': ('average', 'fixed', 'hybrid', 'histogram', 'semantic'),
}
"""Training ``ae`` mode -> the runs whose detector an untrained controller falls back to."""
FALLBACK_ORDER = ('average', 'hybrid', 'fixed', 'gradient', 'histogram', 'semantic')
"""Fallback order of the other untrained controllers (Fixed: after ``fixed_detector``)."""
UNTRAINED_NET_DETECTORS = ('hybrid', 'average', 'fixed', 'gradient', 'histogram', 'semantic')
"""Detector of an untrained network (``allow_untrained``): the first of these runs found."""


def detector_chain(name: str, fixed_detector: str = 'average') -> tuple:
    """
    Training ``ae`` modes whose detector controller ``name`` uses, in order of preference.

    A trained controller: only its own ``train_mode``. Fixed exposure: the detector of the
    method ``fixed_detector`` first (paper Table 2: the Average AE's). Other controllers:
    their own ``train_mode``, then :data:`DETECTOR_FALLBACKS` (or :data:`FALLBACK_ORDER`).
    """
    spec = get_spec(name)
    if spec.trained:
        return (_train_mode(name),)
    rest: Optional[tuple] = None
    if name == 'fixed':       # evaluation policy: Fixed borrows another method's detector
        first = _train_mode(fixed_detector)
    else:
        first = _train_mode(name)
        rest = DETECTOR_FALLBACKS.get(first)
    if rest is None:
        rest = tuple(a for a in FALLBACK_ORDER if a != first)
    return (first,) + tuple(rest)


@dataclass
class BuiltMethods(ItemAccess):
    """
    What :func:`build_methods` loaded (also readable as ``built['methods']``).

    ``methods``: the :class:`Method` objects; ``oracle``: the oracle's
    :class:`Perception` (or None) and ``oracle_from`` where it comes from; ``warnings``;
    ``skipped``: ``{name: reason}``; ``checkpoints``: ``{ae: CheckpointInfo}``;
    ``configs``: their training configs.
    """

    methods: List[Method]
    oracle: Optional[Perception]
    oracle_from: str
    warnings: List[str]
    skipped: Dict[str, str]
    checkpoints: Dict[str, CheckpointInfo]
    configs: list


def _describe(info: CheckpointInfo) -> str:
    return f'{info.path.name} (trained with ae={info.ae})'


def _own_model_method(spec: ControllerSpec, models_dir, explicit, cks, pipeline, fresh,
                      allow_untrained: bool, device) -> Union['Method', str]:
    """
    Build the method of a trained controller with its own model kind, or say why not.

    The network: ``explicit[spec.name]`` or ``models_dir / spec.default_model`` (loaded
    by the controller's factory, which checks it); the detector: the checkpoint trained
    with ``ae = spec.detector_from``, else the first of :func:`detector_chain`'s
    fallbacks, else an untrained one (noted).
    """
    path = Path((explicit or {}).get(spec.name) or Path(models_dir) / str(spec.default_model))
    notes: List[str] = []
    model = None
    untrained = False
    if not path.is_file():
        if not allow_untrained:
            return (f'{spec.label}: model {path} not found; NOT EVALUATED (pass '
                    f'--allow-untrained to run an untrained network for mechanics)')
        notes.append(f'{spec.label}: NO MODEL {path}: UNTRAINED network (random weights)')
        untrained = True
    else:
        try:
            model = spec.build(None, None, model=str(path), device=str(device)).model
        except (ControllerError, ModelError, TrainingError) as err:
            return f'{spec.label}: model {path} unusable ({err}); NOT EVALUATED'
    chain = (spec.detector_from,) + tuple(a for a in FALLBACK_ORDER if a != spec.detector_from)
    use = next((a for a in chain if a in cks), None)
    if use is None:
        _, perc = fresh('fixed')
        notes.append(f'{spec.label}: no detector checkpoint at all: UNTRAINED detector')
    else:
        _, perc = pipeline(use)
        if use != spec.detector_from:
            notes.append(f'{spec.label}: FALLBACK detector: no checkpoint trained with '
                         f'ae={spec.detector_from}; using {perc.source}')
    return Method(spec.name, perc, perc.source, model, notes, untrained, str(device),
                  checkpoint=path if model is not None else None)


def build_methods(models_dir, names: Optional[Sequence[str]] = None, sensor=None, device='cpu',
                  allow_untrained: bool = False, explicit: Optional[dict] = None,
                  fixed_detector: str = 'average', oracle_detector: str = 'hybrid_nn',
                  height: int = 192, width: int = 320, backend: str = 'torch',
                  deploy_dir: Optional[str] = None) -> BuiltMethods:
    """
    Load the methods to evaluate from the checkpoints in ``models_dir``.

    ``names``: controller names (default :func:`method_names`). Returns a
    :class:`BuiltMethods`.

    Table 2 logic: each trained controller uses the detector trained jointly with its AE
    network; Average and Gradient use the detector fine-tuned with them; Fixed uses the
    detector of ``fixed_detector`` (a method name, default the Average AE's). A missing
    detector falls back along :func:`detector_chain` with a warning. A trained method
    without its checkpoint is skipped (warning) unless ``allow_untrained``: then an
    untrained network runs with the first available detector, flagged UNTRAINED. With no
    checkpoint at all: :class:`EvaluationError`, or (``allow_untrained``) one untrained
    pipeline for every method (mechanics runs only). ``backend`` (``deploy_dir``): the
    trained checkpoints' detectors and networks run from their exported files
    (:mod:`neural_ae.core.deploy`, checked here for ``height`` x ``width`` frames);
    untrained networks always run in torch.
    """
    from neural_ae.core.training.checkpoints import load_pipeline
    from neural_ae.core.training.config import TrainConfig
    from neural_ae.core.training.pipeline import ExposurePipeline

    names = method_names() if names is None else names
    sensor = sensor or S.load_sensor('imx249')
    cks = discover_checkpoints(models_dir, explicit)
    ignored = cks.pop('_ignored')
    warnings = [f'checkpoint {p} ignored: another checkpoint of the same ae mode is used'
                for p in ignored]
    warnings += [f'not a usable training checkpoint, skipped: {u}'
                 for u in cks.pop('_unreadable')]
    if not cks and not allow_untrained:
        raise EvaluationError(
            f'no trained checkpoints found in {Path(models_dir)} (expected *.pt written by '
            f'`neural-ae train`, e.g. models/hybrid_demo.pt); train them first, point '
            f'--models at them, or pass --allow-untrained for a mechanics-only run')
    pipes = {}

    def pipeline(ae: str):
        if ae not in pipes:
            pipe, _, _ = load_pipeline(cks[ae].path, device='cpu')
            perc = Perception(pipe.detector, pipe.isp, device, _describe(cks[ae]))
            if backend != 'torch':
                from neural_ae.core.deploy import attach_detector_backend

                attach_detector_backend(perc, cks[ae].path, backend, str(device), deploy_dir,
                                        (height, width))
            pipes[ae] = (pipe, perc)
        return pipes[ae]

    untrained_pipe = {}

    def fresh(mode: str):
        if mode not in untrained_pipe:
            cfg = TrainConfig(ae=mode, height=height, width=width)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                pipe = ExposurePipeline(cfg, sensor)
            untrained_pipe[mode] = (pipe.eval(), Perception(
                pipe.detector, pipe.isp, device, f'UNTRAINED (random weights, ae={mode})'))
        return untrained_pipe[mode]

    if not cks:
        warnings.append(f'NO TRAINED CHECKPOINTS in {models_dir}: every method runs with '
                        f'UNTRAINED random weights (mechanics only, the figures mean nothing)')
    available = [ae for ae in UNTRAINED_NET_DETECTORS if ae in cks]
    methods, skipped = [], {}
    for name in names:
        spec = get_spec(name)
        if spec.trained and spec.detector_from:
            own = _own_model_method(spec, models_dir, explicit, cks, pipeline, fresh,
                                    allow_untrained, device)
            if isinstance(own, str):
                skipped[name] = own
                warnings.append(own)
            else:
                methods.append(own)
                warnings.extend(own.notes)
            continue
        if spec.trained:
            mode = _train_mode(name)
            if mode in cks:
                pipe, perc = pipeline(mode)
                methods.append(Method(name, perc, perc.source, pipe.ae, device=str(device),
                                      backend=backend, checkpoint=cks[mode].path,
                                      deploy_dir=deploy_dir))
                continue
            if not allow_untrained:
                reason = (f'no checkpoint trained with ae={mode} in {models_dir}; '
                          f'{spec.label} NOT EVALUATED (pass --allow-untrained to run '
                          f'an untrained network for mechanics)')
                skipped[name] = reason
                warnings.append(reason)
                continue
            net_pipe, _ = fresh(mode)
            if available:
                _, perc = pipeline(available[0])
                det_note = f'detector of {perc.source} (its own does not exist)'
            else:
                _, perc = fresh(mode)
                det_note = perc.source
            note = (f'{spec.label}: NO CHECKPOINT with ae={mode}: UNTRAINED AE network '
                    f'(random weights), {det_note}')
            warnings.append(note)
            methods.append(Method(name, perc, perc.source, net_pipe.ae, [note], True,
                                  str(device)))
            continue
        chain = detector_chain(name, fixed_detector)
        use = next((a for a in chain if a in cks), None)
        notes = []
        if use is None:
            _, perc = fresh('fixed')
            notes.append(f'{spec.label}: no detector checkpoint at all: UNTRAINED detector')
        else:
            _, perc = pipeline(use)
            if use != chain[0]:
                notes.append(f'{spec.label}: FALLBACK detector: no checkpoint trained '
                             f'with ae={chain[0]}; using {perc.source}')
        warnings.extend(notes)
        methods.append(Method(name, perc, perc.source, None, notes, device=str(device)))
    oracle, oracle_from = None, ''
    by_name = {m.name: m for m in methods}
    if oracle_detector in by_name:
        oracle = by_name[oracle_detector].perception
        oracle_from = f'detector of {method_label(oracle_detector)}: {oracle.source}'
    elif methods:
        oracle = methods[-1].perception
        oracle_from = f'detector of {method_label(methods[-1].name)}: {oracle.source}'
        warnings.append(f'oracle: {method_label(oracle_detector)} is not evaluated; the '
                        f'oracle uses the {oracle_from}')
    return BuiltMethods(methods, oracle, oracle_from, warnings, skipped, cks,
                        [c.config for c in cks.values()])

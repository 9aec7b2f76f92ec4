"""
``build_methods`` with the personalized controller: its own model kind, another's detector.

The policy file is not an exposure training checkpoint: the method takes its network from
``personalized_demo.pt`` (or ``--checkpoint personalized=PATH``) and scores its frames
with the detector of the Hybrid NN's run (the detector expert's); a missing policy skips
the method with a reason, ``allow_untrained`` runs a random policy flagged UNTRAINED, and
a foreign file is refused in one line.
"""
import os

from neural_ae.core.controllers.personalized import PersonalizedController
from neural_ae.core.evaluation.methods import build_methods
from neural_ae.core.paths import models_dir
from neural_ae.core.personalized.policy import PolicyNet, save_policy
from neural_ae.core.sensor import load_sensor
import torch


def _folder(tmp_path, with_policy: bool):
    folder = tmp_path / ('with' if with_policy else 'without')
    folder.mkdir()
    os.symlink(models_dir() / 'hybrid_demo.pt', folder / 'hybrid_demo.pt')
    if with_policy:
        torch.manual_seed(3)
        save_policy(folder / 'personalized_demo.pt', PolicyNet(), {'stage': 1})
    return folder


def test_personalized_method_uses_its_policy_and_the_hybrid_detector(tmp_path):
    sensor = load_sensor('imx249')
    built = build_methods(_folder(tmp_path, True), ['personalized', 'hybrid_nn'], sensor)
    by = {m.name: m for m in built.methods}
    method = by['personalized']
    assert not method.untrained and method.notes == []
    assert method.perception.source == by['hybrid_nn'].perception.source
    assert 'hybrid_demo.pt' in method.detector_from
    ctrl = method.controller(sensor, smoothing='stable')
    assert isinstance(ctrl, PersonalizedController)
    assert ctrl.model is method.model and ctrl.options.smoothing == 'stable'
    # the report's model list names the policy file (it is no training checkpoint)
    from neural_ae.commands.evaluate import _own_model_lines

    lines = _own_model_lines(built.methods)
    assert len(lines) == 1 and 'personalized_demo.pt' in lines[0]
    assert 'no model card' in lines[0] and 'hybrid_demo.pt' in lines[0]


def test_a_missing_or_foreign_policy_is_skipped_or_flagged(tmp_path):
    sensor = load_sensor('imx249')
    folder = _folder(tmp_path, False)
    built = build_methods(folder, ['personalized'], sensor)
    assert built.methods == [] and 'not found' in built.skipped['personalized']
    built = build_methods(folder, ['personalized'], sensor, allow_untrained=True)
    assert built.methods[0].untrained and 'UNTRAINED' in built.methods[0].notes[0]
    foreign = tmp_path / 'foreign.pt'
    torch.save({'format': 'something else'}, foreign)
    built = build_methods(folder, ['personalized'], sensor,
                          explicit={'personalized': str(foreign)})
    assert 'not a personalized policy' in built.skipped['personalized']

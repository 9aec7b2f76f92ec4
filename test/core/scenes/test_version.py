"""The scene generator key: caches of generated scenes never serve stale content."""
from neural_ae.core.scenes import scenarios
from neural_ae.core.scenes import version
from neural_ae.core.training.data import ProceduralPairs
import numpy as np
import pytest


def test_key_is_stable_and_depends_on_size():
    assert version.generator_key(64, 96) == version.generator_key(64, 96)
    assert version.generator_key(64, 96) != version.generator_key(96, 64)
    assert len(version.generator_key(64, 96)) == 16


@pytest.mark.parametrize('name, value', [('BLOOM_THRESHOLD', 1e9), ('E_SUNLIT_WHITE', 2e8),
                                         ('MIN_BOX_PX', 5)])
def test_changed_generator_parameter_changes_the_key(monkeypatch, name, value):
    before = version.generator_key(64, 96)
    monkeypatch.setattr(scenarios, name, value)
    assert version.generator_key(64, 96) != before


def test_changed_generator_version_or_source_changes_the_key(monkeypatch):
    before = version.generator_key(64, 96)
    monkeypatch.setattr(version, 'GENERATOR_VERSION', version.GENERATOR_VERSION + 1)
    assert version.generator_key(64, 96) != before
    monkeypatch.undo()
    sources = version._sources()
    edited = [(name, data + b'\n# edited\n' if name.endswith('world.py') else data)
              for name, data in sources]
    monkeypatch.setattr(version, '_sources', lambda: edited)
    assert version.generator_key(64, 96) != before


def test_cache_misses_after_a_parameter_change(tmp_path, monkeypatch):
    src = ProceduralPairs(7, 1, 64, 96, str(tmp_path))
    assert src.prepare() == 1 and src.prepare() == 0          # filled, then a hit
    monkeypatch.setattr(scenarios, 'BLOOM_THRESHOLD', scenarios.BLOOM_THRESHOLD * 10)
    changed = ProceduralPairs(7, 1, 64, 96, str(tmp_path))
    assert changed.generator_key != src.generator_key
    assert changed.prepare() == 1                             # the old file is not served
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f'64x96-{src.generator_key}', f'64x96-{changed.generator_key}'])


def test_file_of_another_generator_in_the_keyed_folder_is_regenerated(tmp_path, caplog):
    src = ProceduralPairs(7, 1, 64, 96, str(tmp_path))
    good = src[0]
    path = src._path(7)
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data['generator_key'] = np.asarray('0123456789abcdef')
    data['rad2'] = np.zeros_like(data['rad2'])                # stale content
    np.savez(path, **data)
    with caplog.at_level('WARNING'):
        again = ProceduralPairs(7, 1, 64, 96, str(tmp_path))[0]
    assert 'another scene generator' in caplog.text
    np.testing.assert_array_equal(again['rad2'], good['rad2'])
    with np.load(path) as z:
        assert str(z['generator_key']) == src.generator_key

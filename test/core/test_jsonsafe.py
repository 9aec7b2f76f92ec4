"""json_safe: numpy to Python, non-finite to None, so strict JSON accepts the result."""
import json

from neural_ae.core.jsonsafe import json_safe
import numpy as np


def test_json_safe_converts_numpy_and_non_finite():
    doc = {1: np.array([1.5, np.nan]), 'b': (np.int64(3), np.bool_(True), float('inf'))}
    out = json_safe(doc)
    assert out == {'1': [1.5, None], 'b': [3, True, None]}
    json.dumps(out, allow_nan=False)

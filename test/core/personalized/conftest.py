"""Small synthetic variant sets for the personalized-policy tests (no scene rendering)."""
from neural_ae.core.personalized.data import VARIANTS_EV, VariantSet
from neural_ae.core.personalized.experts import EXPERTS
import numpy as np
import pytest


def synthetic_variants(n: int = 12, size: int = 48, seed: int = 0) -> VariantSet:
    """Grey frames whose brightness follows the variant offset: mid-grey is learnable."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.15, 0.35, n)
    imgs = np.zeros((n, len(VARIANTS_EV), size, size, 3), np.uint8)
    for i in range(n):
        tex = rng.uniform(0.7, 1.3, (size, size, 1))
        for j, ev in enumerate(VARIANTS_EV):
            lin = np.clip(base[i] * tex * 2.0 ** ev, 0, 1)
            imgs[i, j] = np.rint(255 * lin ** (1 / 2.2)).astype(np.uint8)
    offsets = rng.uniform(-1, 1, (n, len(EXPERTS))).astype(np.float32)
    offsets[:, 0] = 0.0
    return VariantSet(imgs, offsets, VARIANTS_EV.copy(), np.arange(n))


@pytest.fixture
def tiny_variants():
    """Twelve synthetic scenes x 21 variants at 48 px."""
    return synthetic_variants()


@pytest.fixture
def make_variants():
    """Return a factory of more synthetic variant sets (arguments: n, size, seed)."""
    return synthetic_variants

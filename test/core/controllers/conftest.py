"""Test doubles shared by the controller tests (a fixture: test modules cannot import this)."""
import pytest
import torch
from torch import nn


class ConstNet(nn.Module):
    """Test double for an exposure network: returns a fixed ``u`` whatever the input."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, hist=None, features=None):
        return torch.full((1,), self.value, dtype=torch.float64)


@pytest.fixture(scope='session')
def const_net():
    """Return the :class:`ConstNet` class: called with ``u``, a network that always says ``u``."""
    return ConstNet

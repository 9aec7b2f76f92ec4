"""
The radiance unit an HDR bag declares, in rosbag2's ``custom_data`` (``metadata.yaml``).

The sensor model takes radiance as photo-electrons per second per pixel of the target
sensor (:data:`E_PER_S`). A bag written by :class:`~neural_ae.core.bags.HDRBagWriter`
declares the unit of its radiance topic under :data:`UNIT_KEY`: :data:`E_PER_S` (used as
is) or :data:`RELATIVE` (an HDR camera's own units, to be scaled before replay, see
:mod:`neural_ae.core.calibration`). A bag without the key (recorded by anything else)
is undeclared. The scale a tool chose is recorded under :data:`SCALE_KEY` and
:data:`SCALE_METHOD_KEY`.
"""
from typing import Optional

from neural_ae.core.errors import BagFormatError

__all__ = ['check_unit', 'E_PER_S', 'RELATIVE', 'SCALE_KEY', 'SCALE_METHOD_KEY', 'UNIT_KEY',
           'UNITS']

UNIT_KEY = 'neural_ae.radiance_unit'
"""custom_data key: the unit of the radiance topic (one of :data:`UNITS`)."""
SCALE_KEY = 'neural_ae.radiance_scale'
"""custom_data key: the factor the radiance was (or is to be) multiplied by, as text."""
SCALE_METHOD_KEY = 'neural_ae.radiance_scale_method'
"""custom_data key: how that factor was chosen (``declared``, ``given``, ``auto``)."""
E_PER_S = 'e-/s'
"""Photo-electrons per second per pixel of the project's sensor model: used as is."""
RELATIVE = 'relative'
"""Linear but in unknown units (an HDR camera's own DN/s, a merged value in [0, 1], ...)."""
UNITS = (E_PER_S, RELATIVE)


def check_unit(unit: Optional[str], where: str = 'radiance_unit') -> Optional[str]:
    """Return ``unit`` (``None`` = undeclared) or raise :class:`BagFormatError`."""
    if unit is None or unit in UNITS:
        return unit
    raise BagFormatError(f'{where} must be one of {", ".join(UNITS)} (or none), got {unit!r}')

"""
No-reference pixel-level exposure assessment (P-IEANet, He et al., NeurIPS 2024; issue 13).

A network predicts, from one processed RGB frame, a per-pixel exposure residual in
[-1, 1] (negative over-exposed, positive under-exposed, 0 ideal) and a global score
``10 * (1 - mean |r|)``. Modules: :mod:`.dwt` (orthonormal Haar pair as fixed stride-2
convolutions), :mod:`.network` (the net and its ablations), :mod:`.labels` (exact labels
from the HDR scenes; the seed ranges), :mod:`.metrics` (MAE, SSIM, SRCC, PLCC and the
baselines), :mod:`.training` (``neural-ae train --config config/train_assessor.yaml``),
:mod:`.judge` (model file, :class:`ExposureJudge` under / well / over, heat map),
:mod:`.benchmark` (the tables and figure of ``neural-ae assess``).
"""
from neural_ae.core.assessment.errors import AssessmentError
from neural_ae.core.assessment.judge import (Assessment, ExposureJudge, heatmap_rgb,
                                             load_assessor)

__all__ = ['Assessment', 'AssessmentError', 'ExposureJudge', 'heatmap_rgb', 'load_assessor']

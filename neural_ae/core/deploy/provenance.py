"""
Provenance of an exported network: which checkpoint, bit for bit, it was exported from.

Every ONNX file (in its ``metadata_props``) and every TensorRT engine (in a JSON file
beside it) carries :func:`checkpoint_provenance` of its checkpoint: the SHA-256 of the
``.pt`` file, a SHA-256 of the training fingerprint stored in it (the outputs on a fixed
batch that ``neural-ae train --verify`` recomputes), a SHA-256 of its embedded training
config, its format and training step. :func:`stale_reason` compares an artifact's
metadata with the checkpoint as it is now: an artifact exported from another (e.g.
retrained) checkpoint is *stale* and must not run in its place.
"""
import hashlib
import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

PREFIX = 'neural_ae.'
"""Namespace of the metadata keys written by neural_ae."""
CHECKPOINT_SHA = PREFIX + 'checkpoint_sha256'
"""Metadata key: SHA-256 of the checkpoint file the artifact was exported from."""

__all__ = ['CHECKPOINT_SHA', 'checkpoint_provenance', 'file_sha256', 'PREFIX', 'stale_reason',
           'tensor_digest']


def file_sha256(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open('rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def tensor_digest(values: Mapping) -> str:
    """SHA-256 of a mapping of name -> tensor (keys sorted, float64 bytes); '' if empty."""
    import torch

    if not values:
        return ''
    h = hashlib.sha256()
    for key in sorted(values):
        v = values[key]
        h.update(str(key).encode())
        if torch.is_tensor(v):
            h.update(v.detach().cpu().to(torch.float64).contiguous().numpy().tobytes())
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


def checkpoint_provenance(path: Union[str, Path], ckpt: Optional[dict] = None) -> Dict[str, str]:
    """
    Metadata linking an artifact to checkpoint ``path`` (all values strings).

    ``ckpt``: the already read checkpoint dict (read here otherwise, through
    :func:`neural_ae.core.checkpoints.read_checkpoint`).
    """
    from neural_ae.core.checkpoints import read_checkpoint

    path = Path(path)
    if ckpt is None:
        ckpt = read_checkpoint(path, 'checkpoint')
    metrics: dict = ckpt['metrics'] if isinstance(ckpt.get('metrics'), dict) else {}
    stored: dict = metrics['fingerprint'] if isinstance(metrics.get('fingerprint'), dict) else {}
    config: dict = ckpt['config'] if isinstance(ckpt.get('config'), dict) else {}
    config_text = json.dumps(config, sort_keys=True, default=str) if config else ''
    return {
        CHECKPOINT_SHA: file_sha256(path),
        PREFIX + 'checkpoint_name': path.name,
        PREFIX + 'checkpoint_format': str(ckpt.get('format', '')),
        PREFIX + 'checkpoint_global_step': str(ckpt.get('global_step', '')),
        PREFIX + 'training_fingerprint_sha256': tensor_digest(stored),
        PREFIX + 'config_sha256': (hashlib.sha256(config_text.encode()).hexdigest()
                                   if config_text else ''),
    }


def stale_reason(meta: Mapping[str, str], checkpoint: Union[str, Path],
                 artifact: Union[str, Path]) -> Optional[str]:
    """
    Why the artifact with metadata ``meta`` does not belong to ``checkpoint``, or None.

    Compares the checkpoint file's SHA-256 now with the one recorded at export.
    """
    recorded = meta.get(CHECKPOINT_SHA)
    if not recorded:
        return (f'{artifact} carries no {CHECKPOINT_SHA} metadata: not exported by '
                f'neural-ae export, cannot tell which checkpoint it belongs to')
    now = file_sha256(checkpoint)
    if recorded != now:
        return (f'{artifact} is stale: exported from checkpoint sha256 {recorded[:12]} '
                f'(step {meta.get(PREFIX + "checkpoint_global_step", "?")}), but '
                f'{checkpoint} is now sha256 {now[:12]}; export it again')
    return None

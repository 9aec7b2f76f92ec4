"""
Evaluation of exposure controllers with their detectors (``neural-ae evaluate``).

One module per part:

- :mod:`.config`: :class:`~.config.EvalConfig` (``config/evaluate.yaml``), held-out seed
  ranges and their check against the training runs;
- :mod:`.methods`: the evaluated methods (the registered live controllers, each with the
  detector that belongs to it) and checkpoint discovery;
- :mod:`.oracle`: the hindsight oracle (sweep, per-image score, closed-loop controller);
- :mod:`.shift`: the paper's shift protocol (Sec. 6.1, Table 1);
- :mod:`.drives`: the closed-loop drive protocol and its typed results;
- :mod:`.bag`: a user's labelled HDR rosbag2 as a drive and as shift pairs;
- :mod:`.report`: tables, targets, figures, ``BENCHMARKS.md``;
- :mod:`.common`: a progress bar and mapping-style access for the typed results.

The submodules are imported where they are used (this package imports none of them, so
``import neural_ae.core.evaluation`` stays cheap).
"""

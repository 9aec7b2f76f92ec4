"""
ROS 2 latency of the auto-exposure node (issue 6): ``neural-ae bench --suite ros_latency``.

:func:`measure_latency`: frame-in to SetParameters-sent latency of
:class:`~neural_ae.nodes.auto_exposure_node.AutoExposureNode` under a timer-driven stream
(60 Hz) of ``bayer_rggb16`` frames holding 12-bit data (1936x1216 in the suite).

- Processes: three on one host, as in a deployment. A camera process (one rclpy node
  ``bench_camera``, MultiThreadedExecutor with two threads, the 60 Hz publishing timer in
  its own callback group so the parameter services never wait for it) publishes
  ``camera/image_raw`` (sensor-data QoS, depth 1; two pre-rendered frames, a dark and a
  bright one, alternate) and declares ``exposure_time`` [us] / ``gain`` [dB] like a
  generic driver, so the node's ``generic`` driver preset commands it. The AE process
  runs the node spun by a SingleThreadedExecutor as ``auto_exposure_node.main`` does,
  plus the node's own worker thread. This process only orchestrates (files in a
  temporary folder) and computes the figures; it starts no rclpy context. Loopback
  discovery (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``), a private ``ROS_DOMAIN_ID``
  (150 + pid % 50) and a per-run namespace. Both children are ``python -m
  neural_ae.benchmarks.ros_latency CONFIG.json`` (this package's ``__main__``).
- Transport: ``large_shm`` (default) gives both processes a Fast DDS profile whose
  shared-memory segment holds 16 frames. With the rmw defaults (512 KiB segment),
  best-effort 4.7 MB images are mostly lost between processes even to a bare subscriber
  (see ros2/rmw_fastrtps#739); the suite measures that too (``bare_delivery_rmw_default``).
- Clock: wall clock (``time.time_ns``, the same in every process). The camera stamps
  each header right before ``publish()``: "frame in" is the moment the driver hands the
  frame to rclpy, so serialization and transport are inside the figure.
- Instrumentation (in the AE process; the node's code is unchanged, a subclass wraps
  it): entry time of the image callback per stamp ("delivered"); the mailbox is a
  counting subclass of ``LatestFrameMailbox``; the worker's ``_process`` is wrapped to
  know which frame a decision belongs to; the node's ``FrameStep`` is replaced by a twin
  that records each ``StepResult``; the actuator's ``_submit`` / ``_send_locked``
  are wrapped to record when the request carrying that decision has been handed to
  ``call_async`` ("sent"). A decision replaced while an earlier request is in flight
  (the actuator coalesces) is never sent and has no latency (``decisions_not_sent``).
  The camera records when its on-set-parameters callback sees ``exposure_time``; one
  client's requests arrive in send order, so the k-th received is the k-th sent
  (checked by the exposure value: ``driver_order_mismatches``).
- Figures: ``frame_to_sent_ms`` (median, p99) = publish + transport + wait in the mailbox
  + conversion + detector + controller + actuator, over the frames whose decision was
  sent; ``frame_to_driver_ms`` adds the service transport and the camera's executor;
  ``breakdown_median_ms`` splits the first into delivery, mailbox wait and processing;
  ``worker_ms_per_frame`` is the whole ``_process`` (also the debug image, published
  after the command), which sets the node's throughput. Before activation the AE
  process runs the detector and a twin controller once on a frame of the stream's size,
  so torch's first-call costs are not in the stream. Node parameters are the defaults
  (debug image on) except ``driver_node`` and ``exposure_feedback_topic`` (off); the
  ``*_no_debug_image`` cases switch the debug image off. With a detector, ``detector``
  gives per processed frame the step's perception time (``StepResult.timings.
  perception_ms``: ``Perception.run``) and the ISP's inside it, and the ``layer2`` shape
  (the detector rescales its input; the ISP runs at full size).
- Queue (``stream``): frames published, delivered to the node's callback (the rest were
  lost before the node: best effort, depth 1), taken by the worker, processed, dropped
  by the latest-frame-wins mailbox; the largest number of frames the mailbox held
  (``puts - takes - dropped - cleared``, counted after every put and take, so a growing
  queue would show) and in the node (waiting + in processing); ``accounted``: delivered
  == taken + dropped + cleared + left and taken == processed + bad + errors. ``trend``:
  median latency of the first and last quarter of the sent decisions and a least-squares
  slope [ms per s of run].
- References measured in the same run: ``bare_delivery`` (a plain subscriber instead of
  the node: publish -> subscription callback of the same frames, its own stream), the
  Average AE, and each case's own ``delivery_ms`` (same stream, to the node); ``ratios``
  divide each case's median frame-to-sent latency by the three.


Speed figures are reported as measured and as ratios against references measured in the
same run; nothing here asserts a time. The machine may be shared: read the ratios. Replay
speed against real time, once part of this suite, is the ``replay`` suite
(:mod:`neural_ae.benchmarks.replay`).

Modules: :mod:`.protocol` (names, domain, file handshake), :mod:`.camera` (the camera /
driver process), :mod:`.node` (the instrumented node in the AE process), :mod:`.measure`
(the orchestrator of one case), :mod:`.stats` (the figures), :mod:`.suite` (cases and
the suite's document).
"""
from neural_ae.benchmarks.ros_latency.measure import (FASTDDS_LARGE_SHM, measure_latency,
                                                      TRANSPORTS)
from neural_ae.benchmarks.ros_latency.stats import latency_ratios, queue_summary, summarize
from neural_ae.benchmarks.ros_latency.suite import latency_cases, run, run_suite

__all__ = ['FASTDDS_LARGE_SHM', 'latency_cases', 'latency_ratios', 'measure_latency',
           'queue_summary', 'run', 'run_suite', 'summarize', 'TRANSPORTS']

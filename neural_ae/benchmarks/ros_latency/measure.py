"""
The orchestrator of one latency case: start the two children, drive the handshake.

:func:`measure_latency` writes the children's configs and a Fast DDS profile
(:data:`FASTDDS_LARGE_SHM`) to a temporary folder, starts the camera and the AE process
(:mod:`.camera`, :mod:`.node`) with a private ``ROS_DOMAIN_ID`` and loopback discovery,
signals start / stop through files (:mod:`.protocol`), reads their records and hands them
to :func:`~.stats.summarize`. This process starts no rclpy context.
"""
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Optional

from neural_ae.benchmarks.ros_latency.protocol import (CHILD_MODULE, DRIVER, private_domain,
                                                       tail, wait)
from neural_ae.benchmarks.ros_latency.stats import summarize

ROOT = Path(__file__).resolve().parents[3]
"""Repository (or install) root: the children's working directory and PYTHONPATH."""
_RUNS = {'n': 0}

FASTDDS_LARGE_SHM = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>ros_latency_shm</transport_id>
        <type>SHM</type>
        <segment_size>{segment_size}</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>ros_latency_udp</transport_id>
        <type>UDPv4</type>
        <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="ros_latency" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>ros_latency_shm</transport_id>
          <transport_id>ros_latency_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""
"""Fast DDS profile for ``transport='large_shm'``: a shared-memory segment holding frames."""

TRANSPORTS = ('large_shm', 'rmw_default')


def measure_latency(height: int = 1216, width: int = 1936, controller: str = 'average',
                    seconds: float = 5.0, rate_hz: float = 60.0, model_path: str = '',
                    detector_path: str = '', transport: str = 'large_shm',
                    node_parameters: Optional[dict] = None, domain: Optional[int] = None,
                    startup_timeout_s: float = 120.0, drain_timeout_s: float = 60.0) -> dict:
    """
    Stream ``seconds`` of ``height`` x ``width`` frames at ``rate_hz`` to the AE node.

    ``controller='none'``: a bare subscriber instead of the node (delivery reference).
    ``transport``: ``'large_shm'`` (Fast DDS shared memory with a segment of 16 frames,
    :data:`FASTDDS_LARGE_SHM`) or ``'rmw_default'`` (the rmw's own settings). Returns the
    figures described in :mod:`neural_ae.benchmarks.ros_latency`; raises RuntimeError
    when a child process fails.
    ``node_parameters`` override further parameters of the node (e.g.
    ``{'publish_debug_image': False}``).
    """
    if transport not in TRANSPORTS:
        raise ValueError(f'transport must be one of {TRANSPORTS}, got {transport!r}')
    _RUNS['n'] += 1
    namespace = f'/ros_latency_{os.getpid()}_{_RUNS["n"]}'
    domain = private_domain() if domain is None else int(domain)
    tmp = tempfile.TemporaryDirectory(prefix='ros_latency_')
    d = Path(tmp.name)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    for key in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                'FASTDDS_BUILTIN_TRANSPORTS'):
        env.pop(key, None)
    segment = 0
    if transport == 'large_shm':
        segment = max(16 * height * width * 2 + (1 << 20), 1 << 22)
        (d / 'fastdds.xml').write_text(FASTDDS_LARGE_SHM.format(segment_size=segment))
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(d / 'fastdds.xml')
    common = {'domain': domain, 'namespace': namespace, 'height': height, 'width': width,
              'rate_hz': rate_hz, 'seconds': seconds, 'drain_timeout_s': drain_timeout_s,
              'startup_timeout_s': startup_timeout_s, 'start_file': str(d / 'start'),
              'published_file': str(d / 'published'), 'stop_file': str(d / 'stop'),
              'finish_file': str(d / 'finish')}
    cfgs = {
        'camera': dict(common, role='camera', ready_file=str(d / 'camera.ready'),
                       result_file=str(d / 'camera.json')),
        'ae': dict(common, role='ae', controller=controller, ready_file=str(d / 'ae.ready'),
                   result_file=str(d / 'ae.json'),
                   parameters={'controller': controller, 'model_path': model_path,
                               'detector_path': detector_path, 'driver_node': DRIVER,
                               'exposure_feedback_topic': '', **(node_parameters or {})})}
    procs, logs = {}, []
    try:
        for role, cfg in cfgs.items():  # the camera first: the node looks for its driver
            (d / f'{role}.config.json').write_text(json.dumps(cfg))
            log = (d / f'{role}.log').open('w')
            logs.append(log)
            procs[role] = subprocess.Popen(
                [sys.executable, '-m', CHILD_MODULE, str(d / f'{role}.config.json')],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))

        def fail(what: str):
            tails = '; '.join(f'{r}: {tail(d / f"{r}.log")}' for r in procs)
            results = '; '.join(f'{r}: {tail(Path(c["result_file"]))}'
                                for r, c in cfgs.items())
            return RuntimeError(f'{controller}: {what}; results {results}; logs {tails}')

        ready = [Path(c['ready_file']) for c in cfgs.values()]
        if not wait(lambda: all(p.exists() for p in ready), startup_timeout_s,
                    procs.values()):
            raise fail('the children did not get ready')
        Path(common['start_file']).write_text('start')
        if not wait(Path(common['published_file']).exists,
                    startup_timeout_s + seconds + 30.0, procs.values()):
            raise fail('the camera did not publish')
        time.sleep(0.3)
        Path(common['stop_file']).write_text('stop')
        ae_result = Path(cfgs['ae']['result_file'])
        if not wait(ae_result.exists, drain_timeout_s + 30.0, [procs['ae']]):
            raise fail('no result from the node process')
        Path(common['finish_file']).write_text('finish')
        cam_result = Path(cfgs['camera']['result_file'])
        if not wait(cam_result.exists, 30.0, [procs['camera']]):
            raise fail('no result from the camera process')
        child, cam = json.loads(ae_result.read_text()), json.loads(cam_result.read_text())
        if 'error' in child or 'error' in cam:
            raise fail('a child failed')
        for proc in procs.values():
            try:
                proc.wait(timeout=30.0)
            except subprocess.TimeoutExpired:
                proc.kill()
        out = summarize(controller, height, width, rate_hz, cam, child)
        out['node_parameters'] = dict(node_parameters or {})
        out['transport'] = (f'Fast DDS SHM, segment {segment / 2 ** 20:.0f} MiB'
                            if segment else 'rmw defaults')
        return out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10.0)
        for log in logs:
            log.close()
        tmp.cleanup()

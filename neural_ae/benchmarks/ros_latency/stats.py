"""
The latency bench's figures, computed in the orchestrating process from the records.

:func:`summarize`: one case (camera records + AE-process records -> latency, breakdown,
stream / queue accounting, trend); :func:`latency_ratios` and :func:`queue_summary`:
across the cases of a suite. See :mod:`neural_ae.benchmarks.ros_latency` for what each
figure means.
"""
import math

from neural_ae.benchmarks._common import latency_stats, ratio
import numpy as np


def trend(t_s, lat_ms) -> dict:
    """First- vs last-quarter median latency and the slope [ms per s] over the run."""
    t = np.asarray(t_s, dtype=np.float64)
    lat = np.asarray(lat_ms, dtype=np.float64)
    n = lat.size
    if n == 0:
        return {'n': 0, 'first_quarter_median_ms': math.nan,
                'last_quarter_median_ms': math.nan, 'last_over_first': math.nan,
                'slope_ms_per_s': math.nan}
    q = max(1, n // 4)
    first, last = float(np.median(lat[:q])), float(np.median(lat[-q:]))
    slope = math.nan
    if n >= 3 and np.ptp(t) > 0:
        slope = float(np.polyfit(t - t[0], lat, 1)[0])
    return {'n': int(n), 'quarter_size': int(q),
            'first_quarter_median_ms': round(first, 3),
            'last_quarter_median_ms': round(last, 3),
            'last_over_first': ratio(last, first),
            'slope_ms_per_s': round(slope, 3) if math.isfinite(slope) else math.nan}


def summarize(controller: str, height: int, width: int, rate_hz: float, cam: dict,
              child: dict) -> dict:
    """Turn the camera's and the child's records into the figures."""
    published = [(int(a), int(b)) for a, b in cam['published']]
    received = {int(s): int(t) for s, t in child['received']}
    delivery = [(received[s] - s) / 1e6 for s, _ in published if s in received]
    publish_call = [(r - s) / 1e6 for s, r in published]
    span_s = (published[-1][0] - published[0][0]) / 1e9 if len(published) > 1 else math.nan
    out = {'controller': controller, 'resolution': [height, width],
           'encoding': 'bayer_rggb16 (12-bit)', 'rate_hz_requested': rate_hz,
           'stream_s': round(cam['stream_s'], 3),
           'torch_threads_node_process': child['torch_threads'],
           'delivery_ms': latency_stats(delivery),
           'publish_call_ms': latency_stats(publish_call)}
    stream = {'frames_published': len(published),
              'rate_hz_achieved': (round((len(published) - 1) / span_s, 2)
                                   if span_s > 0 else math.nan),
              'frames_delivered': len(child['received'])}
    stream['frames_lost_before_node'] = stream['frames_published'] - stream['frames_delivered']
    if controller == 'none':
        out['stream'] = stream
        return out
    mb, nd = child['mailbox'], child['node']
    processed = {int(p[0]): p for p in child['processed']}
    sends = [s for s in child['sends'] if s[2] == 'setting' and s[0] is not None]
    to_sent, deliv, wait, proc_ms, t_sent = [], [], [], [], []
    for stamp, t, _, _ in sends:
        stamp, t = int(stamp), int(t)
        to_sent.append((t - stamp) / 1e6)
        t_sent.append(t / 1e9)
        if stamp in received and stamp in processed:
            deliv.append((received[stamp] - stamp) / 1e6)
            wait.append((processed[stamp][1] - received[stamp]) / 1e6)
            proc_ms.append((t - processed[stamp][1]) / 1e6)
    all_sends = child['sends']
    requests = cam['requests']
    to_driver, mismatches = [], 0
    for (stamp, _, kind, value), (t_recv, got) in zip(all_sends, requests):
        if not (math.isclose(value, got, rel_tol=1e-9) or kind != 'setting'):
            mismatches += 1
        if kind == 'setting' and stamp is not None:
            to_driver.append((t_recv - int(stamp)) / 1e6)
    worker_ms = [(p[2] - p[1]) / 1e6 for p in child['processed']]
    stream.update({
        'frames_taken_by_worker': mb['taken'], 'frames_processed': nd['frames_processed'],
        'frames_dropped_by_mailbox': mb['dropped'], 'frames_left_in_mailbox': mb['left'],
        'frames_cleared': mb['cleared'], 'bad_frames': nd['bad_frames'],
        'errors': nd['errors'], 'max_mailbox_occupancy': mb['max_occupancy'],
        'max_frames_in_node': mb['max_in_node'], 'drained': child['drained'],
        'accounted': (mb['puts'] == stream['frames_delivered']
                      and mb['puts'] == mb['taken'] + mb['dropped'] + mb['cleared']
                      + mb['left']
                      and mb['taken'] == nd['frames_processed'] + nd['bad_frames']
                      + nd['errors'])})
    out.update({
        'warmup_ms': round(child['warmup_ms'], 1) if math.isfinite(child['warmup_ms'])
        else math.nan,
        'frame_to_sent_ms': latency_stats(to_sent),
        'frame_to_driver_ms': latency_stats(to_driver),
        'breakdown_median_ms': {
            'delivery': latency_stats(deliv)['median_ms'],
            'mailbox_wait': latency_stats(wait)['median_ms'],
            'processing_to_sent': latency_stats(proc_ms)['median_ms']},
        'worker_ms_per_frame': latency_stats(worker_ms),
        'decisions_sent': len(sends), 'decisions_not_sent': child['decisions_not_sent'],
        'driver_requests_received': len(requests), 'driver_order_mismatches': mismatches,
        'actuator': {k: child['actuator'][k] for k in ('sent', 'succeeded', 'rejected',
                                                       'timeouts', 'coalesced',
                                                       'unavailable')},
        'trend': trend(t_sent, to_sent), 'stream': stream})
    if child['perception_ms']:
        out['detector'] = {'perception_run_ms': latency_stats(child['perception_ms']),
                           'isp_ms': latency_stats(child['isp_ms']),
                           'layer2_shape': child['layer2_shape']}
    if nd['last_error']:
        out['last_error'] = nd['last_error']
    return out


def latency_ratios(latency: dict) -> dict:
    """
    Median frame-to-sent latency over three references measured in the same run.

    The Average AE's frame-to-sent latency, the bare subscriber's delivery delay (a
    separate stream) and the case's own delivery delay (same stream, to the node).
    """
    bare = latency.get('bare_delivery', {}).get('delivery_ms', {}).get('median_ms', math.nan)
    avg = latency.get('average', {}).get('frame_to_sent_ms', {}).get('median_ms', math.nan)
    out = {'reference_bare_delivery_median_ms': bare,
           'reference_average_frame_to_sent_median_ms': avg}
    for name, res in latency.items():
        if 'frame_to_sent_ms' not in res:
            continue
        med = res['frame_to_sent_ms']['median_ms']
        own = res['delivery_ms']['median_ms']
        out[name] = {'frame_to_sent_median_ms': med, 'over_average': ratio(med, avg),
                     'over_bare_delivery': ratio(med, bare),
                     'over_own_delivery': ratio(med, own)}
    return out


def queue_summary(latency: dict) -> dict:
    """Per case: published, delivered, processed, dropped, max occupancy, latency trend."""
    out = {}
    for name, res in latency.items():
        st = res.get('stream')
        if not st:
            continue
        row = {k: st[k] for k in ('frames_published', 'frames_delivered',
                                  'frames_lost_before_node') if k in st}
        for k in ('frames_processed', 'frames_dropped_by_mailbox', 'max_mailbox_occupancy',
                  'max_frames_in_node', 'accounted'):
            if k in st:
                row[k] = st[k]
        if 'trend' in res:
            row.update({k: res['trend'][k] for k in ('first_quarter_median_ms',
                                                     'last_quarter_median_ms',
                                                     'last_over_first', 'slope_ms_per_s')})
        out[name] = row
    return out

"""
Evaluation report: text and Markdown tables, target checks, PNG figures, BENCHMARKS.md.

Inputs are the results of the protocols: the JSON-shaped dict of
:func:`~neural_ae.core.evaluation.shift.run_shift_protocol` and the
:class:`~neural_ae.core.evaluation.drives.DriveProtocolResult` of
:func:`~neural_ae.core.evaluation.drives.run_drive_protocol`. AP values are fractions in
the protocol results and shown as percentages (the paper's Table 1 style).

Figures (matplotlib, Agg backend):

- ``shift_map.png``: mAP per method per shift level, error bars = std over repeats;
- ``drive_tunnel_exit_exposure.png`` (and ``drive_step10x_exposure.png``): exposure in
  force per frame for each method, with the scene's mid-grey exposure;
- ``drive_step_response.png``: exposure (EV relative to the frame before) vs frame after
  the 10x step of the ``step10x`` drive, one panel per actuation latency, one line per
  controller (and smoothing);
- ``frame_grid.png``: the same frame (just after the tunnel exit) as captured under each
  method, rendered with :func:`neural_ae.core.preview.render_raw`, ground truth dashed,
  detections with confidence >= 0.5 drawn.
"""
import json
import math
from pathlib import Path
import shutil
from typing import Any, Dict, List, Optional, Sequence, Union

from neural_ae.core.classes import class_name, CLASSES
from neural_ae.core.evaluation.drives import (DriveProtocolResult, DriveResult, DriveRun,
                                              step_response)
from neural_ae.core.evaluation.methods import baseline_names, method_label
from neural_ae.core.jsonsafe import json_safe
import numpy as np

TARGET_MARGIN_K10 = 6.0
"""Hybrid NN ahead of the best baseline at k = 10 by this many mAP points."""
TARGET_GAP_CLOSED = 0.7
"""Hybrid NN reaches this fraction of the causal headroom (best baseline -> causal ceiling)
at k = 10."""
TARGET_CONVERGE_FRAMES = 5
"""Frames to converge after a 10x step at actuation latency 1 and 2."""
TARGET_CONVERGE_FRAMES_L0 = 3
"""Frames to converge after a 10x step at actuation latency 0."""
TARGET_OSCILLATIONS = 1
TARGET_FLICKER_EV = 0.05
DET_THRESHOLD = 0.5
"""Detections drawn in the frame grid have at least this confidence."""


def _pct(v) -> str:
    return 'n/a' if v is None or not math.isfinite(v) else f'{100 * v:.2f}'


def _num(v, fmt='{:.2f}') -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return 'n/a'
    return fmt.format(v)


def _ceiling_entry(shift: dict) -> Optional[dict]:
    """Return the causal ceiling as a shift-table row (same figure at every ``k``), or None."""
    c = shift.get('causal_ceiling')
    if not c:
        return None
    level = {'map50_mean': c['map50_mean'], 'map50_std': c['map50_std'],
             'ev_error_median': abs(c['offset_ev'])}
    return {'detector_from': c.get('detector_from', ''), 'notes': [], 'untrained': False,
            'levels': {f'{k:g}': dict(level) for k in shift['levels']},
            'label': f'Causal ceiling ({c["offset_ev"]:+g} EV)'}


def _rows(shift: dict, ceiling: bool = False) -> list:
    rows = [(name, e) for name, e in shift['methods'].items()]
    entry = _ceiling_entry(shift) if ceiling else None
    if entry is not None:
        rows.append(('causal_ceiling', entry))
    if shift.get('oracle'):
        rows.append(('oracle', shift['oracle']))
    return rows


def _label(name: str, e: dict) -> str:
    return e.get('label') or method_label(name)


# --------------------------------------------------------------------------- tables


def shift_table_text(shift: dict) -> str:
    """Plain-text mAP table: methods x shift levels, ``mean +- std`` [%], detector used."""
    levels = [f'{k:g}' for k in shift['levels']]
    head = f'{"method":<26}' + ''.join(f'{"k=" + k:>17}' for k in levels) + '  detector'
    lines = [head, '-' * len(head)]
    for name, e in _rows(shift, ceiling=True):
        cells = ''.join(f'{_pct(e["levels"][k]["map50_mean"]) + " +- "}'
                        f'{_pct(e["levels"][k]["map50_std"]):<7}'.rjust(17) for k in levels)
        flag = ' UNTRAINED' if e.get('untrained') else ''
        lines.append(f'{_label(name, e) + flag:<26}{cells}  {e["detector_from"]}')
    return '\n'.join(lines)


def _assessor_cells(shift: dict, name: str, levels: Sequence[str]) -> list:
    """Assessor columns of a shift row: mean score per level, SRCC and PLCC with AP."""
    a = (shift.get('assessor') or {}).get('methods', {}).get(name)
    if a is None:
        return ['—'] * (len(levels) + 2)
    return ([_num(a['levels'][k]['score_mean']) for k in levels]
            + [_num(a['all']['srcc'], '{:+.2f}'), _num(a['all']['plcc'], '{:+.2f}')])


def shift_table_md(shift: dict) -> str:
    """
    Markdown mAP table (mean +- std over repeats, %), with the detector used.

    With assessor figures (``shift['assessor']``) also the mean assessor score [0-10] of
    frame 2 per level and its SRCC / PLCC with per-image AP (pooled over levels).
    """
    levels = [f'{k:g}' for k in shift['levels']]
    scored = bool(shift.get('assessor'))
    extra = (''.join(f' score k = {k} |' for k in levels) + ' SRCC score/AP | PLCC score/AP |'
             if scored else '')
    out = ['| method | ' + ' | '.join(f'mAP k = {k}' for k in levels) + ' |' + extra
           + ' median abs(log2 e2/e_base) at k = ' + levels[-1] + ' | detector |',
           '|---|' + '---:|' * len(levels) + ('---:|' * (len(levels) + 2) if scored else '')
           + '---:|---|']
    best = {}
    for k in levels:
        vals = [e['levels'][k]['map50_mean'] for n, e in shift['methods'].items()]
        vals = [v for v in vals if math.isfinite(v)]
        best[k] = max(vals) if vals else math.nan
    for name, e in _rows(shift, ceiling=True):
        cells = []
        for k in levels:
            st = e['levels'][k]
            txt = f'{_pct(st["map50_mean"])} ± {_pct(st["map50_std"])}'
            if name in shift['methods'] and math.isfinite(st['map50_mean']) and \
                    st['map50_mean'] == best[k]:
                txt = f'**{txt}**'
            cells.append(txt)
        flag = ' (UNTRAINED)' if e.get('untrained') else ''
        if scored:
            cells += _assessor_cells(shift, name, levels)
        ev = _num(e['levels'][levels[-1]].get('ev_error_median'), '{:.2f} EV')
        out.append(f'| {_label(name, e)}{flag} | ' + ' | '.join(cells)
                   + f' | {ev} | {e["detector_from"]} |')
    return '\n'.join(out)


def assessor_shift_text(shift: dict) -> str:
    """Plain-text assessor table of a shift result: score per level, SRCC, PLCC, n."""
    a = shift.get('assessor')
    if not a:
        return ''
    levels = [f'{k:g}' for k in shift['levels']]
    head = (f'{"method":<26}' + ''.join(f'{"score k=" + k:>13}' for k in levels)
            + f'{"SRCC":>8}{"PLCC":>8}{"n":>7}')
    lines = [head, '-' * len(head)]
    for name in shift['methods']:
        m = a['methods'].get(name)
        if m is None:
            continue
        lines.append(f'{method_label(name):<26}'
                     + ''.join(f'{_num(m["levels"][k]["score_mean"]):>13}' for k in levels)
                     + f'{_num(m["all"]["srcc"], "{:+.2f}"):>8}'
                     f'{_num(m["all"]["plcc"], "{:+.2f}"):>8}{m["all"]["n"]:>7}')
    al = a['all']
    lines.append(f'all methods pooled: SRCC {_num(al["srcc"], "{:+.3f}")} (p '
                 f'{_num(al["srcc_p"], "{:.1e}")}), PLCC {_num(al["plcc"], "{:+.3f}")} (p '
                 f'{_num(al["plcc_p"], "{:.1e}")}), n {al["n"]} images; model {a["model"]} '
                 f'at {a["width_px"]} px')
    return '\n'.join(lines)


def _run_assessment(run: DriveRun) -> Optional[dict]:
    """:func:`~.assessor.score_summary` of a drive run's frames, or None without scores."""
    from neural_ae.core.evaluation.assessor import score_summary

    if not run.assessed:
        return None
    return score_summary(run.assessed)


def _pooled_assessment(drives: DriveProtocolResult) -> Optional[dict]:
    from neural_ae.core.evaluation.assessor import score_summary

    rows = [p for d in drives.drives for run in d.runs.values() for p in (run.assessed or [])]
    return score_summary(rows) if rows else None


def assessor_drive_text(drives) -> str:
    """Plain-text assessor table of drive results (per latency, drive and method)."""
    out = []
    for res in latency_results(drives):
        pooled = _pooled_assessment(res)
        if pooled is None:
            continue
        out.append(f'{f"latency {res.latency_frames} frames:":<26}{"drive / method":<44}'
                   f'{"score":>8}{"SRCC":>8}{"PLCC":>8}{"n":>6}')
        for d in res.drives:
            for key, run in d.runs.items():
                a = _run_assessment(run)
                if a is None:
                    continue
                out.append(f'{"":<26}{d.name + " / " + method_label(key):<44}'
                           f'{_num(a["score_mean"]):>8}{_num(a["srcc"], "{:+.2f}"):>8}'
                           f'{_num(a["plcc"], "{:+.2f}"):>8}{a["n"]:>6}')
        out.append(f'{"":<26}all pooled: SRCC {_num(pooled["srcc"], "{:+.3f}")}, PLCC '
                   f'{_num(pooled["plcc"], "{:+.3f}")}, n {pooled["n"]} labelled frames')
    return '\n'.join(out)


def direction_table_md(shift: dict) -> str:
    """
    Markdown table: mAP and landing exposure per shift direction and level.

    ``under`` = frame 1 at ``e_base / k``, ``over`` = at ``k e_base``; AP pooled over the
    repeats; ``e2`` = median ``log2(e2 / e_base)`` of frame 2 (0 = mid-grey).
    """
    levels = [f'{k:g}' for k in shift['levels']]
    head = ' | '.join(f'k={k} {side}' for k in levels for side in ('under', 'over'))
    out = [f'| method | {head} |', '|---|' + '---:|' * (2 * len(levels))]
    for name, e in _rows(shift):
        cells = []
        for k in levels:
            st = e['levels'][k]
            for side in ('under', 'over'):
                cells.append(f'{_pct(st.get(f"map50_{side}"))} '
                             f'({_num(st.get(f"log2_e2_over_ebase_median_{side}"), "{:+.1f}")}'
                             f' EV)')
        out.append(f'| {method_label(name)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(out)


def offsets_table_md(shift: dict) -> str:
    """
    Markdown table of the fixed-offset sweep behind the causal ceiling ('' without one).

    mAP [%] with frame 2 at ``e_base * 2 ** offset`` for every image: on the validation
    pairs that choose the offset, and on the test pairs (mean ± std over repeats); the
    chosen offset in bold.
    """
    test, val = shift.get('offsets'), shift.get('offsets_val')
    c = shift.get('causal_ceiling')
    if not test or not val or not c:
        return ''
    lines = ['| offset from e_base [EV] | validation mAP [%] | test mAP [%] |',
             '|---:|---:|---:|']
    for j, off in enumerate(test['offsets_ev']):
        row = [f'{off:+g}', _pct(val['map50_mean'][j]),
               f'{_pct(test["map50_mean"][j])} ± {_pct(test["map50_std"][j])}']
        if off == c['offset_ev']:
            row = [f'**{x}**' for x in row]
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def class_table_md(shift: dict, level: str) -> str:
    """Markdown per-class AP table at one shift level (Table 1 layout)."""
    names = ', '.join(CLASSES)
    out = [f'| method | {" | ".join(CLASSES)} | mAP |',
           '|---|' + '---:|' * (len(CLASSES) + 1)]
    for name, e in _rows(shift):
        st = e['levels'][level]
        cells = [f'{_pct(st["ap50_mean"][c])} ± {_pct(st["ap50_std"][c])}' for c in CLASSES]
        out.append(f'| {method_label(name)} | ' + ' | '.join(cells)
                   + f' | {_pct(st["map50_mean"])} ± {_pct(st["map50_std"])} |')
    gt = next(iter(_rows(shift)))[1]['levels'][level].get('num_gt', {})
    if gt:
        out.append('')
        out.append(f'Ground-truth boxes per repeat ({names}): '
                   + ', '.join(str(gt.get(c, 0)) for c in CLASSES) + '.')
    return '\n'.join(out)


# mAP: mean ± std over the drive's repeats when it was repeated
DRIVE_COLUMNS = (('map', 'mAP [%]'), ('frames_to_converge', 'conv [fr]'),
                 ('overshoot_ev', 'overshoot [EV]'), ('oscillations', 'osc'),
                 ('flicker_ev', 'flicker [EV]'), ('settled_offset_ev', 'offset [EV]'),
                 ('saturated_time', 'sat. time'))


def _drive_cells(run: DriveRun) -> list:
    s = run.metrics['summary']
    conv = s['frames_to_converge']
    spread = map_spread(run)
    ap = (f'{_pct(map_mean(run))} ± {_pct(spread)}' if math.isfinite(spread)
          else _pct(run.ap['map50']))
    return [ap, 'never' if conv is None and s['n_events'] else
            _num(conv, '{}'), _num(s['overshoot_ev']), _num(s['oscillations'], '{}'),
            _num(s['flicker_ev'], '{:.3f}'), _num(s['settled_offset_ev']),
            _num(s['saturated_time'], '{:.0%}')]


def drive_table_md(drives: DriveProtocolResult) -> str:
    """
    One Markdown table per drive: mAP over all frames and the temporal metrics.

    Runs with assessor scores (:attr:`DriveRun.assessed`) add the mean score [0-10] and
    its SRCC with per-frame AP after the mAP column.
    """
    parts = []
    for d in drives.drives:
        n_ev = None
        scored = any(run.assessed for run in d.runs.values())
        titles = [t for _, t in DRIVE_COLUMNS]
        if scored:
            titles[1:1] = ['score', 'SRCC score/AP']
        lines = ['| method | ' + ' | '.join(titles) + ' |', '|---|' + '---:|' * len(titles)]
        for key, run in d.runs.items():
            n_ev = run.metrics['summary']['n_events']
            cells = _drive_cells(run)
            if scored:
                a = _run_assessment(run)
                cells[1:1] = (['—', '—'] if a is None else
                              [_num(a['score_mean']), _num(a['srcc'], '{:+.2f}')])
            lines.append(f'| {method_label(key)} | ' + ' | '.join(cells) + ' |')
        parts.append(f'**{d.name}** (scenario {d.scenario}, seed {d.seed}, '
                     f'{d.n_frames} frames, {n_ev} illumination event(s))\n\n'
                     + '\n'.join(lines))
    return '\n\n'.join(parts)


def drive_table_text(drives: DriveProtocolResult) -> str:
    """Plain-text version of :func:`drive_table_md`."""
    out = []
    head = f'{"method":<24}' + ''.join(f'{t:>15}' for _, t in DRIVE_COLUMNS)
    for d in drives.drives:
        out.append(f'{d.name} (seed {d.seed}, {d.n_frames} frames)')
        out.append(head)
        out.append('-' * len(head))
        for key, run in d.runs.items():
            out.append(f'{method_label(key):<24}' + ''.join(f'{c:>15}'
                                                            for c in _drive_cells(run)))
        out.append('')
    return '\n'.join(out).rstrip()


def latency_results(drives) -> List[DriveProtocolResult]:
    """Drive results as a list, one per latency (None: empty; one result: a list of it)."""
    if drives is None:
        return []
    if isinstance(drives, DriveProtocolResult):
        return [drives]
    return list(drives)


def drive_tables_md(drives) -> str:
    """
    :func:`drive_table_md` per latency, each headed ``latency L frames``.

    ``drives``: one :class:`DriveProtocolResult` or a list (one per latency); a single
    latency gives exactly :func:`drive_table_md`.
    """
    results = latency_results(drives)
    if len(results) == 1:
        return drive_table_md(results[0])
    return '\n\n'.join(f'#### latency {r.latency_frames} frames\n\n{drive_table_md(r)}'
                       for r in results)


def drive_tables_text(drives) -> str:
    """Plain-text version of :func:`drive_tables_md`."""
    results = latency_results(drives)
    if len(results) == 1:
        return drive_table_text(results[0])
    return '\n\n'.join(f'=== latency {r.latency_frames} frames ===\n{drive_table_text(r)}'
                       for r in results)


def step_events_md(drives: DriveProtocolResult, name: str = 'step10x') -> str:
    """Per-event detail (frames to converge, overshoot, oscillations) of the step drives."""
    steps = [x for x in drives.drives if x.name.split('_')[0] == name]
    if not steps:
        return ''
    lines = ['| method | drive | event frame | step [EV] | conv [fr] | overshoot [EV] | osc | '
             'flicker [EV] | offset [EV] |', '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for d in steps:
        for key, run in d.runs.items():
            for ev in run.metrics['events']:
                lines.append(f'| {method_label(key)} | {d.name} | {ev["start"]} | '
                             f'{_num(ev["step_ev"])} | '
                             f'{_num(ev["frames_to_converge"], "{}")} | '
                             f'{_num(ev["overshoot_ev"])} | {ev["oscillations"]} | '
                             f'{_num(ev["flicker_ev"], "{:.3f}")} | '
                             f'{_num(ev["settled_offset_ev"], "{:+.2f}")} |')
    return '\n'.join(lines)


# --------------------------------------------------------------------------- targets


def _segments(run: DriveRun) -> list:
    """Return the run's event segments, or its initial segment when it has no event."""
    m = run.metrics
    return list(m['events']) or ([m['initial']] if m.get('initial') else [])


def map_spread(run: DriveRun) -> float:
    """Run-to-run spread of a drive's mAP: sample std over its repeats (NaN with one)."""
    reps = [v for v in (run.map50_repeats or []) if v is not None and math.isfinite(v)]
    return float(np.std(reps, ddof=1)) if len(reps) > 1 else math.nan


def map_mean(run: DriveRun) -> float:
    """Mean mAP of a drive over its repeats (the first run's mAP without repeats)."""
    reps = [v for v in (run.map50_repeats or []) if v is not None and math.isfinite(v)]
    return float(np.mean(reps)) if reps else float(run.ap['map50'])


def _shift_targets(shift: dict) -> list:
    out: List[dict] = []
    levels = [f'{k:g}' for k in shift['levels']]
    meth = shift['methods']
    hyb = meth.get('hybrid_nn')
    base = {n: meth[n] for n in baseline_names() if n in meth}
    learned = {n: e for n, e in meth.items() if n not in base}
    k_top = levels[-1]

    def best_base(k):
        name = max(base, key=lambda n: base[n]['levels'][k]['map50_mean'])
        return name, base[name]['levels'][k]

    if not learned or not base:
        out.append({'target': 'every learned controller above every baseline at every k',
                    'value': 'n/a', 'met': None,
                    'note': 'no learned controller or no baseline in this run'})
    else:
        cells, ok = [], True
        for n, e in learned.items():
            worst = min(levels, key=lambda k: e['levels'][k]['map50_mean']
                        - best_base(k)[1]['map50_mean'])
            b, bst = best_base(worst)
            st = e['levels'][worst]
            margin = 100 * (st['map50_mean'] - bst['map50_mean'])
            ok = ok and all(e['levels'][k]['map50_mean'] > best_base(k)[1]['map50_mean']
                            for k in levels)
            cells.append(f'{method_label(n)} worst at k={worst}: {margin:+.2f} '
                         f'({_pct(st["map50_mean"])} ± {_pct(st["map50_std"])} vs '
                         f'{method_label(b)} {_pct(bst["map50_mean"])} ± '
                         f'{_pct(bst["map50_std"])})')
        out.append({'target': 'every learned controller above every baseline at every k',
                    'value': '; '.join(cells), 'met': ok, 'note': ''})
    if hyb is None or not base:
        out.append({'target': f'Hybrid NN >= {TARGET_MARGIN_K10:g} mAP over the best '
                    f'baseline at k = {k_top}', 'value': 'n/a', 'met': None,
                    'note': 'Hybrid NN or every baseline missing from this run'})
        return out
    b10, bst10 = best_base(k_top)
    h = hyb['levels'][k_top]['map50_mean']
    m10 = 100 * (h - bst10['map50_mean'])
    out.append({'target': f'Hybrid NN >= {TARGET_MARGIN_K10:g} mAP over the best baseline '
                f'at k = {k_top}', 'value': f'{m10:+.2f} mAP (vs {method_label(b10)})',
                'met': m10 >= TARGET_MARGIN_K10, 'note': ''})
    ceil = shift.get('causal_ceiling')
    target = f'Hybrid NN reaches >= {TARGET_GAP_CLOSED:.0%} of the causal headroom at k = {k_top}'
    if not ceil:
        out.append({'target': target, 'value': 'n/a', 'met': None,
                    'note': 'no causal ceiling in this run'})
    else:
        c, bm = ceil['map50_mean'], bst10['map50_mean']
        gap = c - bm
        frac = (h - bm) / gap if gap > 1e-9 else math.nan
        out.append({'target': target,
                    'value': (f'{frac:.0%} ({method_label(b10)} {100 * bm:.2f}, Hybrid '
                              f'{100 * h:.2f}, causal ceiling {100 * c:.2f} at '
                              f'{ceil["offset_ev"]:+g} EV, chosen on validation seeds '
                              f'{ceil.get("val_seeds")})' if math.isfinite(frac) else
                              f'headroom {100 * gap:.2f} mAP: not measurable'),
                    'met': bool(frac >= TARGET_GAP_CLOSED) if math.isfinite(frac) else None,
                    'note': ''})
    orc = shift.get('oracle')
    if orc is not None:
        o = orc['levels'][k_top]['map50_mean']
        gap = o - bst10['map50_mean']
        frac = (h - bst10['map50_mean']) / gap if gap > 1e-9 else math.nan
        out.append({'target': f'(reference) share of the gap to the per-image hindsight oracle '
                    f'at k = {k_top}', 'value': f'{frac:.0%} (oracle {100 * o:.2f})'
                    if math.isfinite(frac) else 'n/a', 'met': None, 'reference': True,
                    'note': 'no causal controller can reach the oracle'})
    return out


def _drive_targets(res: DriveProtocolResult, smoothing: str) -> list:
    out: List[dict] = []
    lat = res.latency_frames
    conv_max = TARGET_CONVERGE_FRAMES_L0 if lat == 0 else TARGET_CONVERGE_FRAMES
    keys: List[str] = []
    for d in res.drives:
        keys += [k for k in d.runs if k.endswith(f'+{smoothing}') and k not in keys]
    if not keys:
        out.append({'target': f'latency {lat}: neural controllers stable', 'value': 'n/a',
                    'met': None, 'note': f'no trained controller with {smoothing!r} smoothing'})
    need = 0.5 * math.log2(10.0)
    for key in keys:
        conv, moved, osc, flick, beaten, unmeasured = [], [], {}, {}, [], []
        for d in res.drives:
            run = d.runs.get(key)
            if run is None:
                continue
            segs = _segments(run)
            if d.name.split('_')[0] == 'step10x':
                for ev in run.metrics['events']:
                    conv.append(ev['frames_to_converge'])
                    moved.append(abs(ev['step_ev']) >= need)
            osc[d.name] = max((sg['oscillations'] for sg in segs), default=0)
            flick[d.name] = max((sg['flicker_ev'] for sg in segs), default=0.0)
            avg = d.runs.get('average')
            if avg is not None:
                spread = map_spread(run)
                diff = map_mean(avg) - map_mean(run)
                if not math.isfinite(spread):
                    unmeasured.append(d.name)
                elif diff > spread:
                    beaten.append(f'{d.name} by {100 * diff:.1f} (spread {100 * spread:.1f})')
        ok_conv = bool(conv) and all(moved) and all(c is not None and c <= conv_max
                                                    for c in conv)
        worst_osc = max(osc.values(), default=0)
        worst_fl = max(flick, key=lambda n: flick[n]) if flick else None
        ok = (ok_conv and worst_osc <= TARGET_OSCILLATIONS and worst_fl is not None
              and flick[worst_fl] < TARGET_FLICKER_EV and not beaten)
        met: Optional[bool] = ok
        if ok and unmeasured:
            met = None
        value = (f'step10x conv {conv} (<= {conv_max}); sign changes worst '
                 f'{worst_osc} ({", ".join(f"{n} {v}" for n, v in osc.items())}); flicker worst '
                 + (f'{flick[worst_fl]:.3f} EV ({worst_fl})' if worst_fl else 'n/a')
                 + '; beaten by Average AE beyond its spread: '
                 + (', '.join(beaten) if beaten else 'none'))
        out.append({'target': f'latency {lat}: {method_label(key)} converges <= {conv_max} '
                    f'frames after a 10x step, <= {TARGET_OSCILLATIONS} sign change, flicker '
                    f'< {TARGET_FLICKER_EV} EV, not beaten by Average AE beyond its spread, '
                    f'every drive', 'value': value, 'met': met,
                    'note': (f'spread not measured (one repeat) on {", ".join(unmeasured)}'
                             if unmeasured else '')})
    return out


def check_targets(shift: Optional[dict], drives=None, smoothing: Optional[str] = None) -> list:
    """
    Check the issue's targets: ``[{'target', 'value', 'met' (True/False/None), 'note'}]``.

    ``drives``: one :class:`DriveProtocolResult` or a list (one per latency); the drive
    targets are checked at every latency for the trained controllers run with
    ``smoothing`` (default: the networks' default smoothing). ``met`` None: not
    measurable in this run (a method or protocol missing); ``reference`` rows are
    figures for context, not targets.
    """
    out: List[dict] = []
    if shift is not None:
        out += _shift_targets(shift)
    if smoothing is None:
        from neural_ae.core.controllers.neural import NeuralController
        smoothing = NeuralController.default_smoothing
    for res in latency_results(drives):
        out += _drive_targets(res, smoothing)
    return out


def targets_md(targets: list) -> str:
    """Markdown table of :func:`check_targets`."""
    lines = ['| target | value | met |', '|---|---|---|']
    for t in targets:
        met = 'reference' if t.get('reference') else \
            {True: 'yes', False: '**no**', None: 'not measured'}[t['met']]
        note = f' ({t["note"]})' if t['note'] else ''
        lines.append(f'| {t["target"]} | {t["value"]}{note} | {met} |')
    return '\n'.join(lines)


# --------------------------------------------------------------------------- figures


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_shift(shift: dict, path: Path) -> Path:
    """Plot mAP per method per shift level as grouped bars, error bars = std over repeats."""
    plt = _plt()
    rows = _rows(shift, ceiling=True)
    levels = [f'{k:g}' for k in shift['levels']]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(levels) * max(len(rows), 1) / 3), 4.2))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(levels))
    for j, (name, e) in enumerate(rows):
        means = [100 * e['levels'][k]['map50_mean'] for k in levels]
        stds = [100 * e['levels'][k]['map50_std'] for k in levels]
        hatch = {'oracle': '//', 'causal_ceiling': '..'}.get(name)
        ax.bar(x + (j - (len(rows) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
               label=_label(name, e) + (' (untrained)' if e.get('untrained') else ''),
               hatch=hatch, edgecolor='0.3' if hatch else None)
    ax.set_xticks(x)
    ax.set_xticklabels([f'k = {k}' for k in levels])
    ax.set_ylabel('mAP@0.5 [%]')
    ax.set_title(f'Shift protocol: {shift["n_pairs"]} pairs'
                 f'{" + flips" if shift["flip"] else ""}, {shift["repeats"]} repeats '
                 f'(mean ± std)')
    ax.grid(True, axis='y', alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_drive_exposure(drive: DriveResult, path: Path) -> Path:
    """Exposure in force per frame for every run of one drive, with mid-grey and events."""
    from neural_ae.core.metrics.temporal import find_events

    plt = _plt()
    runs = drive.runs
    first = next(iter(runs.values())).result
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11.0, 6.4), sharex=True,
                                  gridspec_kw={'height_ratios': [3, 2]})
    frames = np.arange(first.n_frames)
    ax.semilogy(frames, first.e_base_s * 1e3, color='black', ls='-.', lw=1.0,
                label='scene mid-grey exposure (e_base)')
    for key, run in runs.items():
        r = run.result
        ls = ':' if key == 'oracle' else '--' if key.endswith('+ema') else '-'
        lw = 1.0 if key == 'oracle' else 1.5
        line, = ax.semilogy(frames, r.e_s * 1e3, ls=ls, lw=lw, label=method_label(key))
        ax2.plot(frames, r.mean_raw_dn, ls=ls, lw=lw * 0.75, color=line.get_color())
    for k, (a, _) in enumerate(find_events(first)):
        for axis in (ax, ax2):
            axis.axvline(a, color='red', ls='--', lw=0.8,
                         label='illumination step' if k == 0 and axis is ax else None)
    ax.set_ylabel('exposure e = K t in force [ms]')
    ax.set_title(f'{drive.name} (seed {drive.seed}): exposure over time')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    ax2.axhline(0.5 * first.white_level_dn, color='black', ls='-.', lw=1)
    ax2.set_ylabel('mean raw [DN]')
    ax2.set_xlabel('frame')
    ax2.set_ylim(0, first.white_level_dn * 1.05)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_step_response(drives, path: Path, name: str = 'step10x') -> Optional[Path]:
    """
    Exposure after the 10x step of drive ``name``: one panel per latency, a line per run.

    Y: ``log2(e / e_before)`` [EV] (:func:`~.drives.step_response`), the full correction
    ``-log2(10)`` dashed; x: frames after the step. None (no file) when no result has the
    drive or no run of it has an upward step.
    """
    panels = []
    for res in latency_results(drives):
        drive = next((d for d in res.drives if d.name == name), None)
        if drive is None:
            continue
        lines = []
        for k, r in drive.runs.items():
            y = step_response(r)
            if y is not None and y.size:
                lines.append((k, y))
        if lines:
            panels.append((res.latency_frames, drive, lines))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 2.4, 4.2),
                             sharey=True, squeeze=False)
    full = -math.log2(10.0)
    for j, (ax, (lat, drive, lines)) in enumerate(zip(axes[0], panels)):
        for key, y in lines:
            ls = ':' if key == 'oracle' else '--' if key.endswith('+ema') else '-'
            ax.plot(np.arange(y.size), y, ls=ls, lw=1.0 if key == 'oracle' else 1.5,
                    marker='.', ms=3, label=method_label(key))
        ax.axhline(full, color='black', ls='-.', lw=1.0, label='full correction (-log2 10)')
        ax.axhline(0.0, color='0.5', lw=0.6)
        ax.set_title(f'latency {lat} frames ({drive.name}, seed {drive.seed})')
        ax.set_xlabel('frame after the 10x step')
        if j == 0:
            ax.set_ylabel('exposure vs before the step [EV]')
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    fig.suptitle('Step response: exposure in force after a 10x illumination step')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grid_frame_index(drive: DriveResult, after: int = 2) -> int:
    """Frame shown in the grid: ``after`` frames after the first illumination event."""
    from neural_ae.core.metrics.temporal import find_events

    first = next(iter(drive.runs.values())).result
    events = find_events(first)
    k = events[0][0] + after if events else first.n_frames // 2
    return int(min(max(k, 0), first.n_frames - 1))


def plot_frame_grid(drive: DriveResult, frames: list, sensor, path: Path,
                    index: Optional[int] = None) -> Optional[Path]:
    """
    Show the same frame as captured under each method, detections (conf >= 0.5) drawn.

    ``frames``: the drive's :class:`~neural_ae.core.evaluation.drives.Frame` list (for
    the ground truth). Returns None when no run kept its raw frames.
    """
    from matplotlib import patches
    from neural_ae.core.preview import render_raw

    runs = [(k, r, r.raws) for k, r in drive.runs.items() if r.raws]
    if not runs:
        return None
    plt = _plt()
    k = grid_frame_index(drive) if index is None else index
    cols = min(3, len(runs))
    nrows = int(math.ceil(len(runs) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.3 * nrows), squeeze=False)
    cmap = plt.get_cmap('tab10')
    gt = frames[k]
    for ax in axes.ravel():
        ax.axis('off')
    for ax, (key, run, raws) in zip(axes.ravel(), runs):
        raw = raws[k]
        ax.imshow(render_raw(raw, sensor.black_level_dn, sensor.white_level_dn,
                             sensor.bayer_pattern))
        for b in np.asarray(gt.boxes).reshape(-1, 4):
            ax.add_patch(patches.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                           ec='white', ls='--', lw=0.8))
        dets = run.detections[k]
        keep = dets['scores'] >= DET_THRESHOLD
        for b, lab, sc in zip(dets['boxes'][keep], dets['labels'][keep], dets['scores'][keep]):
            c = cmap((int(lab) - 1) % 10)
            ax.add_patch(patches.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                           ec=c, lw=1.2))
            ax.text(b[0], b[1] - 1, f'{class_name(lab)} {sc:.2f}', color=c, fontsize=5)
        r = run.result
        ax.set_title(f'{method_label(key)}: e = {r.e_s[k] * 1e3:.3g} ms '
                     f'({math.log2(r.e_s[k] / r.e_base_s[k]):+.1f} EV vs e_base)', fontsize=8)
    fig.suptitle(f'{drive.name} frame {k} (first event + 2) as captured; white dashed = '
                 f'ground truth, coloured = detections with confidence >= {DET_THRESHOLD}',
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- report


def drives_json(drives: DriveProtocolResult) -> dict:
    """JSON-friendly drive results (per-frame settings, metrics, AP; no raw frames)."""
    out: dict = {'seconds': drives.seconds, 'latency_frames': drives.latency_frames,
                 'smoothings': drives.smoothings,
                 'smoothing_options': drives.smoothing_options, 'drives': []}
    for d in drives.drives:
        runs = {}
        for key, run in d.runs.items():
            runs[key] = {'ap': run.ap, 'metrics': run.metrics,
                         'map50_repeats': run.map50_repeats,
                         'per_frame': run.result.to_dict(with_frames=True)}
            if run.assessed:
                runs[key]['assessor'] = _run_assessment(run)
                runs[key]['per_frame']['assessor_score'] = [p[0] for p in run.assessed]
                runs[key]['per_frame']['image_ap50'] = [p[1] for p in run.assessed]
        out['drives'].append({'name': d.name, 'scenario': d.scenario, 'seed': d.seed,
                              'n_frames': d.n_frames, 'runs': runs})
    return json_safe(out)


def write_report(out_dir, context: dict, shift: Optional[dict] = None,
                 drives: Union[None, DriveProtocolResult, Sequence[DriveProtocolResult]] = None,
                 bag: Optional[dict] = None, drive_frames: Optional[dict] = None,
                 sensor=None) -> dict:
    """
    Write ``report.md``, ``results.json`` and the PNG figures to ``out_dir``.

    ``context``: ``command``, ``date``, ``machine``, ``commit``, ``settings`` (dict),
    ``warnings`` (list), ``checkpoints`` (list of lines), ``seconds``. ``bag``:
    ``{'name', 'shift', 'drives'}`` for the bag protocol. ``drive_frames``: drive name ->
    frame list (ground truth for the frame grid). ``drives`` (and ``bag['drives']``): one
    :class:`DriveProtocolResult` or a list, one per latency: tables per latency, targets,
    exposure figures and ``results.json['drives']`` from the first; with more than one,
    ``results.json['drives_by_latency']`` holds them all. Returns ``{'report', 'results',
    'figures': [paths], 'targets': [...]}``.
    """
    from neural_ae.core.sensor import load_sensor

    sensor = sensor or load_sensor('imx249')
    by_latency = latency_results(drives)
    drives = by_latency[0] if by_latency else None
    bag_by_latency = latency_results(bag.get('drives')) if bag is not None else []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    md = ['# neural_ae evaluation report', '']
    md += [f'- command: `{context.get("command", "")}`',
           f'- date: {context.get("date", "")}',
           f'- machine: {context.get("machine", "")}',
           f'- commit: {context.get("commit", "")}',
           f'- wall time: {_num(context.get("seconds"), "{:.0f}")} s', '']
    warnings = list(context.get('warnings') or [])
    if warnings:
        md += ['## WARNINGS (read first)', '']
        md += [f'- **{w}**' for w in warnings]
        md.append('')
    if context.get('checkpoints'):
        md += ['## Models', '']
        md += [f'- {line}' for line in context['checkpoints']]
        md.append('')
    targets = check_targets(shift, by_latency)
    if targets:
        md += ['## Targets', '', targets_md(targets), '']
    if context.get('notes'):
        md += ['## Discussion', '', context['notes'].strip(), '']
    if shift is not None:
        png = plot_shift(shift, out / 'shift_map.png')
        figures.append(png)
        top = f'{shift["levels"][-1]:g}'
        flips = ' and their horizontal flips' if shift['flip'] else ''
        md += ['## Shift protocol (paper Sec. 6.1, Table 1)', '',
               f'{shift["n_pairs"]} held-out pairs{flips} '
               f'({shift["images_per_repeat"]} images per repeat), {shift["repeats"]} repeats; '
               f'frame 1 at kappa x e_base, kappa = 1/k or k with equal probability; one '
               f'controller step sets frame 2 (neural nets: u applied directly, no EMA). '
               f'mAP@0.5 [%] mean ± sample std over repeats; best non-oracle in bold. '
               f'The last numeric column is how far frame 2 landed from its mid-grey '
               f'exposure.', '', shift_table_md(shift), '',
               f'![mAP per shift level]({png.name})', '']
        if shift.get('assessor'):
            a = shift['assessor']
            md += [f'Assessor columns (issue 13): mean no-reference score [0-10] of frame 2 '
                   f'by the exposure assessor `{a["model"]}` at {a["width_px"]} px, and its '
                   f'Spearman (SRCC) / Pearson (PLCC) correlation with the per-image AP@0.5 '
                   f'(frames with ground truth, pooled over levels and repeats). All methods '
                   f'pooled: SRCC {_num(a["all"]["srcc"], "{:+.3f}")}, PLCC '
                   f'{_num(a["all"]["plcc"], "{:+.3f}")} over {a["all"]["n"]} images.', '']
        md += ['### By direction of the shift', '',
               'mAP@0.5 [%] pooled over the repeats, and in brackets where frame 2 landed: '
               'median log2(e2 / e_base) (0 = mid-grey, negative = darker). under = frame 1 '
               'at e_base / k, over = at k x e_base.', '', direction_table_md(shift), '']
        slopes = [(n, e['correction_slope']) for n, e in shift['methods'].items()
                  if e.get('correction_slope') is not None]
        if slopes:
            md += ['One-step correction: least-squares slope of log2 u on log2 kappa over all '
                   'levels (u = e2 / e1, kappa = e1 / e_base as delivered; -1 = the shift '
                   'undone in one step, 0 = not at all): '
                   + ', '.join(f'{method_label(n)} {_num(v, "{:+.2f}")}' for n, v in slopes)
                   + '.', '']
        offsets = offsets_table_md(shift)
        if offsets:
            c = shift['causal_ceiling']
            md += ['### Causal ceiling: one exposure offset for every image', '',
                   'Frame 2 at e_base x 2^offset for every image (a controller that knew each '
                   "frame's mid-grey exposure and the detector's preferred offset), "
                   f'detected by {c.get("detector_from", "")}. The offset is chosen on '
                   f'validation seeds {c.get("val_seeds")} and scored on the held-out test '
                   f'pairs; the per-image hindsight oracle (table above) picks per image and '
                   f'no causal controller can reach it.', '', offsets, '']
        md += [f'### Per class, k = {top}', '', class_table_md(shift, top), '']
        for k in shift['levels'][:-1]:
            md += [f'### Per class, k = {k:g}', '', class_table_md(shift, f'{k:g}'), '']
        notes = [(n, e['notes']) for n, e in _rows(shift) if e.get('notes')]
        if notes:
            md += ['Notes:', '']
            md += [f'- {method_label(n)}: {"; ".join(ns)}' for n, ns in notes]
            md.append('')
    if drives is not None:
        lat = ', '.join(str(r.latency_frames) for r in by_latency)
        md += ['## Drive protocol (closed loop, beyond the paper)', '',
               f'Latency {lat} frame(s); neural controllers once per '
               f'smoothing ({", ".join(drives.smoothings)}; options '
               f'{drives.smoothing_options}); baselines with their own update laws. mAP '
               f'over all frames as captured; temporal metrics from '
               f'`neural_ae.core.metrics.temporal` (conv = worst event, frames until within '
               f'1/3 EV of the settled exposure for good; osc = sign changes of the error; '
               f'flicker = std of log2 exposure over settled frames).', '',
               drive_tables_md(by_latency), '']
        pooled = _pooled_assessment(drives)
        if pooled is not None:
            md += ['score / SRCC score/AP: mean assessor score [0-10] over the frames as '
                   'captured and its Spearman correlation with per-frame AP@0.5 (labelled '
                   f'frames, first repeat). All runs pooled at latency {drives.latency_frames}: '
                   f'SRCC {_num(pooled["srcc"], "{:+.3f}")}, PLCC '
                   f'{_num(pooled["plcc"], "{:+.3f}")} over {pooled["n"]} frames.', '']
        step = step_events_md(drives)
        if step:
            md += ['### step10x events (x10 up, then x10 down)', '', step, '']
        for d in drives.drives:
            if d.name in ('tunnel_exit', 'step10x'):
                png = plot_drive_exposure(d, out / f'drive_{d.name}_exposure.png')
                figures.append(png)
                md += [f'![exposure over time, {d.name}]({png.name})', '']
            if d.name == 'tunnel_exit' and drive_frames and d.name in drive_frames:
                grid = plot_frame_grid(d, drive_frames[d.name], sensor,
                                       out / 'frame_grid.png')
                if grid is not None:
                    figures.append(grid)
                    md += [f'![same frame under each method]({grid.name})', '']
        resp = plot_step_response(by_latency, out / 'drive_step_response.png')
        if resp is not None:
            figures.append(resp)
            md += ['### Step response (x10 up; one panel per latency)', '',
                   f'![step response per latency]({resp.name})', '']
    if bag is not None:
        md += [f'## Bag protocol: {bag["name"]}', '']
        if bag.get('shift') is not None:
            md += ['Shift protocol over consecutive pairs of the bag:', '',
                   shift_table_md(bag['shift']), '']
        if bag_by_latency:
            md += ['Closed loop over the bag:', '', drive_tables_md(bag_by_latency), '']
            for d in bag_by_latency[0].drives:
                png = plot_drive_exposure(d, out / 'bag_exposure.png')
                figures.append(png)
                md += [f'![exposure over time, bag]({png.name})', '']
    if context.get('settings'):
        md += ['## Settings', '', '```', json.dumps(json_safe(context['settings']), indent=1),
               '```', '']
    report = out / 'report.md'
    report.write_text('\n'.join(md))
    results = out / 'results.json'
    bag_doc: Optional[Dict[str, Any]] = None if bag is None else {
        'name': bag['name'], 'shift': bag.get('shift'),
        'drives': drives_json(bag_by_latency[0]) if bag_by_latency else None}
    doc: Dict[str, Any] = {'context': context, 'targets': targets, 'shift': shift,
                           'drives': drives_json(drives) if drives is not None else None,
                           'bag': bag_doc}
    if len(by_latency) > 1:
        doc['drives_by_latency'] = [drives_json(r) for r in by_latency]
    if bag_doc is not None and len(bag_by_latency) > 1:
        bag_doc['drives_by_latency'] = [drives_json(r) for r in bag_by_latency]
    results.write_text(json.dumps(json_safe(doc), indent=1, allow_nan=False))
    return {'report': report, 'results': results, 'figures': figures, 'targets': targets,
            'markdown': '\n'.join(md)}


def write_benchmarks(path, written: dict, figures_dir, rel_prefix: str) -> Path:
    """
    Write ``BENCHMARKS.md`` from a report: figures copied to ``figures_dir``, links fixed.

    ``rel_prefix`` is the figures' folder relative to ``path`` (e.g. ``docs/benchmarks``).
    """
    path = Path(path)
    figs = Path(figures_dir)
    figs.mkdir(parents=True, exist_ok=True)
    text = written['markdown']
    for png in written['figures']:
        shutil.copyfile(png, figs / png.name)
        text = text.replace(f']({png.name})', f']({rel_prefix}/{png.name})')
    text = text.replace('# neural_ae evaluation report',
                        '# neural_ae benchmarks\n\nLatest figures of `neural-ae evaluate` '
                        '(regenerate with the command below plus `--benchmarks`). Full '
                        "per-frame results: `results.json` in the run's output folder.", 1)
    path.write_text(text)
    return path

"""``neural-ae sensor``: check the simulated sensor against theory; SNR plot."""
from pathlib import Path

from neural_ae.commands._args import add_out
from neural_ae.core import sensor as S
import numpy as np


def add_parser(sub) -> None:
    """Register ``sensor``."""
    p = sub.add_parser('sensor', help='simulated raw statistics against theory, SNR plot')
    p.add_argument('--preset', default='imx249', help='sensor preset name or YAML path')
    p.add_argument('--gain-db', type=float, default=0.0, help='analog gain [dB]')
    p.add_argument('--t-exp-ms', type=float, default=10.0, help='exposure time [ms]')
    p.add_argument('--size', type=int, default=256, help='flat-field patch side [px]')
    add_out(p, 'out/sensor_snr.png', 'SNR plot PNG to write', aliases=('--snr-plot',),
            metavar='PNG')
    p.add_argument('--seed', type=int, default=0, help='sensor-noise seed (0)')
    p.set_defaults(func=run)


def stats_table(sensor: S.SensorConfig, t_exp_s: float, gain: float, size: int,
                seed: int, levels_e=None) -> list:
    """Compare simulated and analytic raw mean/variance of flat fields at several signal levels."""
    rng = np.random.default_rng(seed)
    if levels_e is None:
        levels_e = np.geomspace(50, 0.95 * sensor.full_well_e / max(gain, 1.0), 8)
    rows = []
    for mu_e in levels_e:
        raw = S.capture(np.full((size, size), mu_e / t_exp_s), t_exp_s, gain, sensor,
                        rng).astype(np.float64)
        mean, var = S.raw_mean_var(mu_e / t_exp_s, t_exp_s, gain, sensor)
        rows.append({'signal_e': float(mu_e), 'mean_dn': raw.mean(), 'mean_theory_dn': float(mean),
                     'var_dn2': raw.var(), 'var_theory_dn2': float(var),
                     'mean_err_pct': 100 * (raw.mean() - mean) / mean,
                     'var_err_pct': 100 * (raw.var() - var) / var})
    return rows


def snr_plot(sensor: S.SensorConfig, t_exp_s: float, gain: float, size: int, seed: int,
             path: Path) -> Path:
    """Plot measured SNR of flat fields against the analytic curve, up to saturation."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    g = sensor.g1_dn_per_e * gain
    mu = np.geomspace(1, 1.5 * sensor.full_well_e, 200)
    theory = S.snr_theory(mu, t_exp_s, gain, sensor)
    pts = np.geomspace(2, 1.3 * sensor.full_well_e, 28)
    measured = []
    for m in pts:
        raw = S.capture(np.full((size, size), m / t_exp_s), t_exp_s, gain, sensor,
                        rng).astype(np.float64)
        offset = sensor.black_level_dn + g * sensor.dark_current_e_per_s * t_exp_s
        measured.append((raw.mean() - offset) / max(raw.std(), 1e-9) if raw.std() > 0 else 0)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(mu, np.maximum(theory, 1e-3), label='theory: mu/sqrt(mu + sd^2 + sq^2/g^2)')
    ax.loglog(pts, np.maximum(measured, 1e-3), 'o', ms=4, label='simulated flat fields')
    ax.axvline(sensor.full_well_e, color='grey', ls=':', label='full well')
    ax.set_xlabel('signal [e-]')
    ax.set_ylabel('SNR')
    ax.set_ylim(0.1, 1.2 * np.sqrt(sensor.full_well_e))
    ax.set_title(f'{sensor.name}: t = {t_exp_s * 1e3:.1f} ms, K = {gain:.2f}')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(args) -> int:
    """Print the statistics table and write the SNR plot."""
    sensor = S.load_sensor(args.preset)
    gain = 10 ** (args.gain_db / 20)
    t = args.t_exp_ms * 1e-3
    rows = stats_table(sensor, t, gain, args.size, args.seed)
    print(f'{sensor.name}: t_exp = {args.t_exp_ms} ms, gain = {args.gain_db} dB, '
          f'{args.size}x{args.size} flat fields')
    print(f'{"signal e-":>10} {"mean DN":>9} {"theory":>9} {"err %":>6} '
          f'{"var DN2":>9} {"theory":>9} {"err %":>6}')
    for r in rows:
        print(f'{r["signal_e"]:10.0f} {r["mean_dn"]:9.2f} {r["mean_theory_dn"]:9.2f} '
              f'{r["mean_err_pct"]:6.2f} {r["var_dn2"]:9.2f} {r["var_theory_dn2"]:9.2f} '
              f'{r["var_err_pct"]:6.2f}')
    path = snr_plot(sensor, t, gain, args.size, args.seed, Path(args.out))
    print(f'SNR plot: {path}')
    return 0

"""Simulated rollouts for every built-in gate kind at its default settings: does the judge keep its false
rollback rate while checking after every interval, and how many candidate requests does it need to catch
a clear regression? Naive per-interval checks and Flagger-style thresholds judge the *same* data beside it.

A stage: ``intervals`` analysis intervals of ``per_interval`` requests, each request to the candidate with
probability ``split`` (5 %), the gate checked after every interval, a rollback at the first FAIL. Scenarios
(A/A: both variations alike; A/B: the candidate clearly worse):

* independent errors 1 % (A/B 5 %); low base rate 0.1 % (A/B 0.5 %), more traffic;
* errors clustered in time on one arm: bursts of ~10 errors from one user's session land in one interval
  on whichever arm that user is on;
* retries: every failure is repeated (1 + geometric, mean 3 events);
* users with uneven error rates: sessions of 10 requests spanning 3 intervals, 10 % of them failing 8 %
  of the time, the rest 0.2 %;
* a daily cycle: split and base rate both swing ±80 % over the stage, in phase (confounds pooled rates);
* feedback on 3 % of requests (``negative_feedback_rate``; 10 % negative, A/B 30 %), more traffic;
* lognormal per-request cost (σ = 1) and tokens (σ = 0.5); lognormal latency (σ = 0.5) in the exporter's
  ~10 %-wide buckets, A/B every latency × 1.3.

Run: ``.venv/bin/python benchmarks/bench_judge.py [--trials 1000] [--seed 1]`` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from canaryflow.domain.gates import Gate
from canaryflow.domain.judge import quantile_test, rate_test
from canaryflow.domain.means import mean_test
from canaryflow.domain.plan import DEFAULT_GATES
from canaryflow.domain.quantiles import quantile
from canaryflow.domain.stratified import ODDS, mixture_log_lr, null_share

Z_05 = 1.6448536269514722  # one-sided 5 %
Arr = Any


def default_gate(metric: str) -> Gate:
    """The gate as the default plan has it (latency_p50/p99 take latency_p95's settings)."""
    for g in DEFAULT_GATES:
        if g.metric == metric:
            return g
    base = next(g for g in DEFAULT_GATES if g.metric == "latency_p95")
    return base.model_copy(update={"metric": metric})


@dataclass
class Outcome:
    """Per method: the candidate requests seen at the first FAIL (nan = never) and whether it ever passed."""

    fail_at: dict[str, Arr] = field(default_factory=dict)
    passed: dict[str, Arr] = field(default_factory=dict)

    def rate(self, method: str, within: float = math.inf) -> float:
        a = self.fail_at[method]
        return float(np.mean(~np.isnan(a) & (a <= within)))

    def pass_rate(self, method: str) -> float:
        return float(np.mean(self.passed[method])) if method in self.passed else math.nan

    def quantile(self, method: str, q: float) -> float | None:
        a = self.fail_at[method]
        hits = np.sort(a[~np.isnan(a)])
        if hits.size == 0:
            return None
        return float(hits[min(hits.size - 1, int(q * hits.size))])


def _first(flags: Arr, ncum: Arr) -> Arr:
    """Candidate requests at the first True along the check axis (nan where never)."""
    hit = flags.any(axis=1)
    idx = flags.argmax(axis=1)
    return np.where(hit, ncum[np.arange(flags.shape[0]), idx], np.nan)


def _checked(decide: Callable[[int], tuple[Arr, Arr]], k_total: int, ncum: Arr, method: str,
             out: Outcome, *, stop_on_fail: bool = True) -> None:
    """Run ``decide(k)`` (fail, ok) after every interval k; record the first FAIL and any PASS before it."""
    fails, oks = [], []
    for k in range(1, k_total + 1):
        f, o = decide(k)
        fails.append(np.asarray(f, dtype=bool))
        oks.append(np.asarray(o, dtype=bool))
    fail = np.stack(fails, axis=1)
    ok = np.stack(oks, axis=1)
    out.fail_at[method] = _first(fail, ncum)
    # passed: some check passed before any failure (a stage would advance on it)
    first_fail = np.where(fail.any(axis=1), fail.argmax(axis=1), k_total)
    steps = np.arange(k_total)[None, :]
    out.passed[method] = (ok & (steps < first_fail[:, None])).any(axis=1)


# ---------------------------------------------------------------- rate scenarios (counts per interval)

@dataclass
class RateData:
    x: Arr  # candidate bad events per interval (trials, intervals)
    nc: Arr
    y: Arr
    ns: Arr


def rate_scenario(name: str, rng: np.random.Generator, trials: int, k: int, per: int, split: float,
                  p_s: float, p_c: float) -> RateData:
    """Counts per interval for one scenario (see the module doc)."""
    shape = (trials, k)
    if name == "daily cycle":
        phase = np.sin(2 * np.pi * np.arange(k) / k)[None, :]
        s_k = split * (1 + 0.8 * phase) * np.ones(shape)
        nc = rng.binomial(per, s_k)
        ns = per - nc
        mult = 1 + 0.8 * phase
        return RateData(rng.binomial(nc, np.minimum(p_c * mult, 1)), nc, rng.binomial(ns, p_s * mult), ns)
    nc = rng.binomial(per, split, size=shape)
    ns = per - nc
    if name in ("independent", "low base rate", "feedback"):
        return RateData(rng.binomial(nc, p_c), nc, rng.binomial(ns, p_s), ns)
    if name == "clustered in time":
        # half of the errors come in bursts of ~10 from one session, on whichever arm the user is on
        burst = 10.0
        lam = 0.5 * p_s * per / burst  # bursts per interval, both arms
        bc = rng.poisson(lam * split * (p_c / p_s), size=shape)
        bs = rng.poisson(lam * (1 - split), size=shape)
        x = rng.binomial(nc, 0.5 * p_c) + rng.poisson(burst * bc)
        y = rng.binomial(ns, 0.5 * p_s) + rng.poisson(burst * bs)
        return RateData(np.minimum(x, nc), nc, np.minimum(y, ns), ns)
    if name == "retries":
        # each failure repeated: 1 + geometric, mean 3 events
        def events(n: Arr, p: float) -> Arr:
            f = rng.binomial(n, p / 3)
            return np.minimum(f + rng.negative_binomial(np.maximum(f, 1), 1 / 3) * (f > 0), n)

        return RateData(events(nc, p_c), nc, events(ns, p_s), ns)
    if name == "uneven users":
        # sessions of 10 requests over 3 intervals; 10 % of sessions fail at 8 %, the rest at 0.2 %
        def arm(n_mean: float, p: float) -> tuple[Arr, Arr]:
            heavy_p, light_p = 0.082 * p / 0.01, 0.002 * p / 0.01
            starts = rng.poisson(n_mean / 10.0, size=(trials, k + 2))  # sessions starting per interval
            heavy = rng.binomial(starts, 0.1)
            light = starts - heavy

            def spread(a: Arr) -> Arr:  # a session started at j is active in j, j+1, j+2
                return a[:, 2:] + a[:, 1:-1] + a[:, :-2]

            h, lt = spread(heavy), spread(light)
            n = (h + lt) * 10 // 3
            e = rng.binomial(h * 10 // 3, min(heavy_p, 1.0)) + rng.binomial(lt * 10 // 3, light_p)
            return np.minimum(e, n), n

        x, nc = arm(per * split, p_c)
        y, ns = arm(per * (1 - split), p_s)
        return RateData(x, nc, y, ns)
    raise ValueError(name)


def judge_rates(d: RateData, gate: Gate, out: Outcome) -> None:
    """The canaryflow judge and the baselines on the same counts, checked after every interval."""
    k_total = d.x.shape[1]
    ncum = np.cumsum(d.nc, axis=1)
    margin, floor, alpha = gate.margin or 0.0, gate.rate_floor, gate.alpha

    def judge(k: int) -> tuple[Arr, Arr]:
        f, o, _ = rate_test(d.x[:, :k], d.nc[:, :k], d.y[:, :k], d.ns[:, :k], margin=margin, floor=floor,
                            alpha=alpha)
        return f, o

    def pooled(k: int) -> tuple[Arr, Arr]:  # the previous judge: one stratum, independent requests
        xs, ncs = d.x[:, :k].sum(1, keepdims=True), d.nc[:, :k].sum(1, keepdims=True)
        ys, nss = d.y[:, :k].sum(1, keepdims=True), d.ns[:, :k].sum(1, keepdims=True)
        thr = -math.log(alpha)
        pi0 = null_share(ncs, nss, 1 + margin)
        return (mixture_log_lr(xs, xs + ys, pi0, ODDS) >= thr,
                mixture_log_lr(xs, xs + ys, pi0, tuple(1 / r for r in ODDS)) >= thr)

    def z_peek(k: int) -> tuple[Arr, Arr]:
        ce, cn = d.x[:, :k].sum(1), d.nc[:, :k].sum(1)
        se, sn = d.y[:, :k].sum(1), d.ns[:, :k].sum(1)
        pooled_p = (ce + se) / np.maximum(cn + sn, 1)
        var = pooled_p * (1 - pooled_p) * (1 / np.maximum(cn, 1) + 1 / np.maximum(sn, 1))
        z = np.divide(ce / np.maximum(cn, 1) - se / np.maximum(sn, 1), np.sqrt(var), out=np.zeros_like(var),
                      where=var > 0)
        return z > Z_05, z < -Z_05

    _checked(judge, k_total, ncum, "judge", out)
    _checked(pooled, k_total, ncum, "pooled", out)
    _checked(z_peek, k_total, ncum, "z_peek", out)
    # Flagger-style: this interval's candidate rate above stable's + 1 pp; 5 failed checks roll back
    rc = np.divide(d.x, d.nc, out=np.zeros(d.x.shape), where=d.nc > 0)
    rs = np.divide(d.y, d.ns, out=np.zeros(d.y.shape), where=d.ns > 0)
    bad = (d.nc > 0) & (rc > rs + 0.01)
    out.fail_at["flagger"] = _first(np.cumsum(bad, axis=1) >= 5, ncum)


# ---------------------------------------------------------------- means (cost, tokens)

def mean_scenario(rng: np.random.Generator, trials: int, k: int, per: int, split: float, sigma: float,
                  ratio: float) -> tuple[Arr, Arr, Arr, Arr]:
    """Per-interval sums and counts of lognormal per-request values; the candidate's scaled by ``ratio``."""
    to_cand = rng.random((trials, k, per)) < split
    values = rng.lognormal(0.0, sigma, size=(trials, k, per))
    sc = np.where(to_cand, values * ratio, 0.0).sum(-1)
    ss = np.where(to_cand, 0.0, values).sum(-1)
    nc = to_cand.sum(-1).astype(np.float64)
    return sc, nc, ss, per - nc


def judge_means(data: tuple[Arr, Arr, Arr, Arr], gate: Gate, out: Outcome) -> None:
    sc, nc, ss, ns = data
    k_total = sc.shape[1]
    ncum = np.cumsum(nc, axis=1)
    margin = gate.margin or 0.0

    def judge(k: int) -> tuple[Arr, Arr]:
        r = mean_test(sc[:, :k], nc[:, :k], ss[:, :k], ns[:, :k], margin=margin, relative=True,
                      alpha=gate.alpha)
        return r["fail"] > 0, r["ok"] > 0

    def point(k: int) -> tuple[Arr, Arr]:  # the previous judge: ratio of means vs 1 + margin, n ≥ 30
        c, s = sc[:, :k].sum(1) / np.maximum(nc[:, :k].sum(1), 1), ss[:, :k].sum(1) / ns[:, :k].sum(1)
        enough = nc[:, :k].sum(1) >= 30
        return enough & (c / s - 1 > margin), enough & (c / s - 1 <= margin)

    _checked(judge, k_total, ncum, "judge", out)
    _checked(point, k_total, ncum, "point", out)
    rc = np.divide(sc, nc, out=np.zeros(sc.shape), where=nc > 0)
    bad = (nc > 0) & (rc > (1 + margin) * ss / ns)
    out.fail_at["flagger"] = _first(np.cumsum(bad, axis=1) >= 5, ncum)


# ---------------------------------------------------------------- latency quantiles (histogram buckets)

def latency_buckets() -> Arr:
    """The exporter's buckets: ~10 % wide from 20 ms to 120 s, then +Inf."""
    les = [0.02]
    while les[-1] < 120:
        les.append(round(les[-1] * 1.1, 6))
    return np.array([*les, math.inf])


def latency_scenario(rng: np.random.Generator, trials: int, k: int, per: int, split: float, sigma: float,
                     ratio: float, les: Arr) -> tuple[Arr, Arr, Arr, Arr]:
    """Per-interval cumulative bucket counts (trials, k, buckets) of lognormal latencies (median 1 s)."""
    from statistics import NormalDist

    nd = NormalDist(0.0, sigma)
    edges = np.array([nd.cdf(math.log(x)) if math.isfinite(x) else 1.0 for x in les])
    edges_c = np.array([nd.cdf(math.log(x / ratio)) if math.isfinite(x) else 1.0 for x in les])
    p_s, p_c = np.diff(np.concatenate([[0.0], edges])), np.diff(np.concatenate([[0.0], edges_c]))
    nc = rng.binomial(per, split, size=(trials, k))
    ns = per - nc
    cand = np.cumsum(rng.multinomial(nc, p_c / p_c.sum()), axis=-1).astype(np.float64)
    stable = np.cumsum(rng.multinomial(ns, p_s / p_s.sum()), axis=-1).astype(np.float64)
    return cand, stable, nc.astype(np.float64), ns.astype(np.float64)


def judge_latency(data: tuple[Arr, Arr, Arr, Arr], gate: Gate, q: float, les: Arr, out: Outcome) -> None:
    cand, stable, nc, _ = data
    k_total = cand.shape[1]
    ncum = np.cumsum(nc, axis=1)
    margin = gate.margin or 0.0
    ccum, scum = np.cumsum(cand, axis=1), np.cumsum(stable, axis=1)

    def judge(k: int) -> tuple[Arr, Arr]:
        r = quantile_test(les, cand[:, :k], stable[:, :k], q, margin=margin, relative=True, alpha=gate.alpha)
        enough = ncum[:, k - 1] >= 30
        return r["fail"] > 0, (r["ok"] > 0) & enough

    def point(k: int) -> tuple[Arr, Arr]:  # the previous judge: quantile ratio vs 1 + margin, n ≥ 30
        c, s = quantile(les, ccum[:, k - 1], q), quantile(les, scum[:, k - 1], q)
        enough = ncum[:, k - 1] >= 30
        return enough & (c / s - 1 > margin), enough & (c / s - 1 <= margin)

    _checked(judge, k_total, ncum, "judge", out)
    _checked(point, k_total, ncum, "point", out)
    qc, qs = quantile(les, cand, q), quantile(les, stable, q)
    bad = (nc > 0) & (qc > (1 + margin) * qs)
    out.fail_at["flagger"] = _first(np.cumsum(bad, axis=1) >= 5, ncum)


# ---------------------------------------------------------------- the table

LABELS = {
    "judge": "canaryflow judge",
    "pooled": "pooled share SPRT, independent requests assumed (previous judge)",
    "point": "point estimate vs margin, checked every interval (previous judge)",
    "z_peek": "fixed-horizon z-test checked every interval",
    "flagger": "Flagger-style: interval worse than stable (+1 pp / margin), 5 failed checks",
}


@dataclass
class Row:
    gate: str
    scenario: str
    aa: Outcome
    ab: Outcome
    ab_text: str


def run(trials: int, seed: int, *, quick: bool = False) -> list[Row]:
    """Every scenario, A/A and A/B, at the default gates. ``quick``: a smaller stage for tests."""
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    k, per, split = (40, 200, 0.05) if quick else (60, 200, 0.05)
    err = default_gate("error_rate")
    rate_cases = [
        ("error_rate", "independent", k, per, 0.01, 0.05, "1 % → 5 %"),
        ("error_rate", "low base rate", k, per * 10, 0.001, 0.005, "0.1 % → 0.5 %"),
        ("error_rate", "clustered in time", k, per, 0.01, 0.05, "1 % → 5 %"),
        ("error_rate", "retries", k, per, 0.01, 0.05, "1 % → 5 %"),
        ("error_rate", "uneven users", k, per, 0.01, 0.05, "1 % → 5 %"),
        ("error_rate", "daily cycle", k, per, 0.01, 0.05, "1 % → 5 %"),
        ("fallback_rate", "independent", k, per, 0.01, 0.05, "1 % → 5 %"),
        ("completion_rate", "independent", k, per, 0.01, 0.05, "1 % → 5 % not completed"),
        ("negative_feedback_rate", "feedback", k, int(per * 10 * 0.03), 0.1, 0.3, "10 % → 30 % negative"),
    ]
    for metric, scenario, kk, pp, p_s, p_c, text in rate_cases:
        gate = default_gate(metric) if metric != "completion_rate" else err.model_copy(
            update={"metric": "completion_rate"})
        aa, ab = Outcome(), Outcome()
        judge_rates(rate_scenario(scenario, rng, trials, kk, pp, split, p_s, p_s), gate, aa)
        judge_rates(rate_scenario(scenario, rng, trials, kk, pp, split, p_s, p_c), gate, ab)
        rows.append(Row(metric, scenario, aa, ab, text))
    for metric, sigma in (("cost_per_request", 1.0), ("tokens_per_request", 0.5)):
        gate = default_gate("cost_per_request").model_copy(update={"metric": metric})
        aa, ab = Outcome(), Outcome()
        kk = k * 3
        judge_means(mean_scenario(rng, trials, kk, per, split, sigma, 1.0), gate, aa)
        judge_means(mean_scenario(rng, trials, kk, per, split, sigma, 1.5), gate, ab)
        rows.append(Row(metric, f"lognormal σ={sigma:g}", aa, ab, "× 1.5"))
    les = latency_buckets()
    lat_trials = max(50, trials // 2)
    for metric, q in (("latency_p95", 0.95), ("latency_p50", 0.5), ("latency_p99", 0.99)):
        gate = default_gate(metric)
        aa, ab = Outcome(), Outcome()
        kk, pp = k * 2, per * (4 if metric == "latency_p95" else 2)
        judge_latency(latency_scenario(rng, lat_trials, kk, pp, split, 0.5, 1.0, les), gate, q, les, aa)
        judge_latency(latency_scenario(rng, lat_trials, kk, pp, split, 0.5, 1.3, les), gate, q, les, ab)
        rows.append(Row(metric, "lognormal σ=0.5", aa, ab, "× 1.3"))
    return rows


def time_to_pass(trials: int, seed: int, intervals: int = 400, base: float = 0.01) -> tuple[float, float]:
    """A good candidate (``base`` errors like stable, 5 % split, 200 requests per interval) over a long
    stage: the share that passes ``error_rate`` at its default margin and floor, and the median candidate
    requests it took (checked every 10 intervals)."""
    rng = np.random.default_rng(seed)
    d = rate_scenario("independent", rng, trials, intervals, 200, 0.05, base, base)
    gate = default_gate("error_rate")
    ncum = np.cumsum(d.nc, axis=1)
    first = np.full(trials, np.nan)
    for k in range(10, intervals + 1, 10):
        _, ok, _ = rate_test(d.x[:, :k], d.nc[:, :k], d.y[:, :k], d.ns[:, :k], margin=gate.margin or 0.0,
                             floor=gate.rate_floor, alpha=gate.alpha)
        new = np.isnan(first) & ok
        first[new] = ncum[new, k - 1]
    return float(np.mean(~np.isnan(first))), float(np.nanmedian(first))


def _n(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = run(args.trials, args.seed)
    print(f"{args.trials} simulated stages per scenario (latency: {max(50, args.trials // 2)}), 5 % split, "
          f"checked after every interval; default gates ({time.perf_counter() - t0:.0f} s)\n")
    print("| gate | scenario | method | A/A false rollback | A/A passed | regression | caught | "
          "caught ≤ 400 cand. req. | cand. requests to catch (median / p95) |")
    print("|---|---|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        for method in r.aa.fail_at:
            passed = r.aa.pass_rate(method)
            print(f"| {r.gate} | {r.scenario} | {LABELS[method]} | {100 * r.aa.rate(method):.1f} % | "
                  f"{'-' if math.isnan(passed) else f'{100 * passed:.0f} %'} | {r.ab_text} | "
                  f"{100 * r.ab.rate(method):.1f} % | {100 * r.ab.rate(method, 400):.1f} % | "
                  f"{_n(r.ab.quantile(method, 0.5))} / {_n(r.ab.quantile(method, 0.95))} |")
    print(f"\nfixed-horizon one-sided z-test, alpha 0.05, power 0.95, stable 19x, 1 % vs 5 %: "
          f"{fixed_horizon_n(0.01, 0.05)} candidate requests (looked at once, at the end)")
    share, median = time_to_pass(max(50, args.trials // 5), args.seed + 7)
    print(f"a good candidate at 1 % errors passes error_rate within ~4,000 candidate requests in "
          f"{100 * share:.0f} % of stages (median {median:.0f} candidate requests)")
    share, median = time_to_pass(max(50, args.trials // 5), args.seed + 8, intervals=800, base=0.0)
    print(f"with no errors on either side it passes on the 0.1 % floor within ~8,000 candidate requests in "
          f"{100 * share:.0f} % of stages (median {median:.0f} candidate requests)")


def fixed_horizon_n(p_stable: float, p_cand: float, *, k: float = 19.0, alpha: float = 0.05,
                    power: float = 0.95) -> int:
    """Candidate sample of a one-sided two-proportion z-test with stable k× larger, for the given power."""
    z_a = statistics.NormalDist().inv_cdf(1 - alpha)
    z_b = statistics.NormalDist().inv_cdf(power)
    pooled = (p_cand + k * p_stable) / (1 + k)
    num = z_a * math.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + z_b * math.sqrt(
        p_cand * (1 - p_cand) + p_stable * (1 - p_stable) / k)
    return math.ceil((num / (p_cand - p_stable)) ** 2)


if __name__ == "__main__":
    main()

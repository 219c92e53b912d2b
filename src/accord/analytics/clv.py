"""Customer models: BG/NBD, Pareto/NBD and Gamma-Gamma by maximum likelihood; P(alive), expected purchases, CLV."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.paths import FloatArray


@dataclass(frozen=True)
class RFMData:
    """Per customer: repeat purchases x (frequency), time of last purchase t_x (recency) and age T, in time units."""

    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    monetary: FloatArray  # mean value of the repeat purchases (0 without any)


def _compress(*columns: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Unique rows of COLUMNS and how often each occurs (likelihoods are sums over identical customers)."""
    order = np.lexsort(columns[::-1])
    ordered = [np.ascontiguousarray(c[order], dtype=np.float64) for c in columns]
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = np.any([c[1:] != c[:-1] for c in ordered], axis=0)
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(order))).astype(np.float64)
    return [c[starts] for c in ordered], counts


def _wsum(values: FloatArray, weights: FloatArray) -> float:
    """Weighted sum without BLAS (a BLAS dot spins its threads, which costs far more than it saves on a busy box)."""
    return float(np.sum(values * weights))


def _fit(
    negll: Callable[[FloatArray], tuple[float, FloatArray]],
    start: FloatArray,
    names: list[str],
) -> tuple[dict[str, float], float]:
    """Minimise a negative log-likelihood over log-parameters (analytic gradient), with a Nelder-Mead fallback."""
    with threadpool_limits(1, user_api="blas"):  # tiny BLAS calls: threads only spin
        best = optimize.minimize(negll, np.log(start), jac=True, method="L-BFGS-B")
        if not best.success or not np.isfinite(best.fun):
            alt = optimize.minimize(lambda z: negll(z)[0], best.x, method="Nelder-Mead", options={"maxiter": 20000})
            if np.isfinite(alt.fun) and (not np.isfinite(best.fun) or alt.fun < best.fun):
                best = alt
    if not np.isfinite(best.fun):
        raise NotEnoughData("the model could not be fitted to this data")
    return dict(zip(names, np.exp(best.x).tolist(), strict=True)), -float(best.fun)


# ---- BG/NBD (Fader, Hardie & Lee 2005) ------------------------------------------------------------------------


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD purchase model: purchase rate ~ Gamma(r, alpha); dropout after a purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        """Parameters and log-likelihood."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "log_likelihood": self.log_likelihood}

    def p_alive(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """Probability that each customer is still active at the end of their observation."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * np.log((alpha + T) / (alpha + t_x))
        out: FloatArray = np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_odds, 700))), 1.0)
        return out

    def expected_purchases(self, t: float, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """Expected number of purchases in the next T time units (conditional expectation, eq. 10 of the paper)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        first = (a + b + x - 1) / (a - 1)
        second = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        out: FloatArray = first * second * self.p_alive(x, t_x, T)
        return out

    def median_wait(self, x: FloatArray, T: FloatArray) -> FloatArray:
        """Median time from the end of observation to the next purchase, for a customer who is still active."""
        out: FloatArray = (self.alpha + T) * (np.power(2.0, 1.0 / (self.r + x)) - 1.0)
        return out


def _bgnbd_negll(x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> Callable[[FloatArray], Any]:
    pos = x > 0
    xm1 = np.where(pos, x - 1, 0.0)

    def negll(z: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, a, b = np.exp(np.clip(z, -30, 30))
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
        a3 = -(r + x) * np.log(alpha + T)
        a4 = np.where(pos, math.log(a) - np.log(b + xm1) - (r + x) * np.log(alpha + t_x), -np.inf)
        lse = np.logaddexp(a3, a4)
        ll = a1 + a2 + lse
        w3 = np.exp(a3 - lse)
        w4 = np.exp(a4 - lse)
        g_r = special.digamma(r + x) - special.digamma(r) + math.log(alpha) - w3 * np.log(alpha + T)
        g_r -= np.where(pos, w4 * np.log(alpha + t_x), 0.0)
        g_alpha = r / alpha - w3 * (r + x) / (alpha + T) - np.where(pos, w4 * (r + x) / (alpha + t_x), 0.0)
        g_a = special.digamma(a + b) - special.digamma(a + b + x) + w4 / a
        g_b = special.digamma(a + b) + special.digamma(b + x) - special.digamma(b) - special.digamma(a + b + x)
        g_b -= np.where(pos, w4 / (b + xm1), 0.0)
        grads = np.array([_wsum(g_r, w) * r, _wsum(g_alpha, w) * alpha, _wsum(g_a, w) * a, _wsum(g_b, w) * b])
        total = _wsum(ll, w)
        if not np.isfinite(total):
            return math.inf, np.zeros(4)
        return -total, -grads

    return negll


def fit_bgnbd(frequency: FloatArray, recency: FloatArray, T: FloatArray) -> BGNBD:
    """Maximum-likelihood BG/NBD fit on per-customer (x, t_x, T)."""
    _check_rfm(frequency, recency, T)
    (x, t_x, tt), w = _compress(frequency, recency, T)
    scale = float(np.mean(T)) or 1.0
    params, ll = _fit(_bgnbd_negll(x, t_x, tt, w), np.array([1.0, scale, 1.0, 1.0]), ["r", "alpha", "a", "b"])
    return BGNBD(params["r"], params["alpha"], params["a"], params["b"], ll)


def _check_rfm(frequency: FloatArray, recency: FloatArray, T: FloatArray) -> None:
    if len(frequency) == 0:
        raise NotEnoughData("there are no customers to fit")
    if np.any(frequency < 0) or np.any(recency < 0) or np.any(recency > T + 1e-9):
        raise InvalidInput("frequency and recency must be >= 0 and recency <= T for every customer")
    if not np.any(frequency > 0):
        raise NotEnoughData("no customer has a repeat purchase: purchase models need some")


# ---- Pareto/NBD (Schmittlein, Morrison & Colombo 1987; Fader & Hardie 2005 note) --------------------------


@dataclass(frozen=True)
class ParetoNBD:
    """Fitted Pareto/NBD: purchase rate ~ Gamma(r, alpha), dropout rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        """Parameters and log-likelihood."""
        return {"r": self.r, "alpha": self.alpha, "s": self.s, "beta": self.beta, "log_likelihood": self.log_likelihood}


def _pareto_ll(params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    r, alpha, s, beta = params
    big, small = (alpha, beta) if alpha >= beta else (beta, alpha)
    second = s + 1 if alpha >= beta else r + x
    rsx = r + s + x
    z1 = (big - small) / (big + t_x)
    z2 = (big - small) / (big + T)
    log_h1 = np.log(special.hyp2f1(rsx, second, rsx + 1, z1)) - rsx * np.log(big + t_x)
    log_h2 = np.log(special.hyp2f1(rsx, second, rsx + 1, z2)) - rsx * np.log(big + T)
    # A0 = h1 - h2 > 0, in logs
    log_a0 = log_h1 + np.log1p(-np.exp(np.minimum(log_h2 - log_h1, -1e-16)))
    base = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    term1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    term2 = math.log(s) - np.log(rsx) + log_a0
    out: FloatArray = base + np.logaddexp(term1, term2)
    return out


def fit_pareto_nbd(frequency: FloatArray, recency: FloatArray, T: FloatArray) -> ParetoNBD:
    """Maximum-likelihood Pareto/NBD fit (Nelder-Mead on log-parameters; the likelihood has hypergeometric terms)."""
    _check_rfm(frequency, recency, T)
    (x, t_x, tt), w = _compress(frequency, recency, T)

    def negll(z: FloatArray) -> float:
        with np.errstate(all="ignore"):
            ll = _wsum(_pareto_ll(np.exp(np.clip(z, -20, 20)), x, t_x, tt), w)
        return -ll if np.isfinite(ll) else math.inf

    scale = float(np.mean(T)) or 1.0
    start = np.log([1.0, scale, 1.0, scale])
    best = optimize.minimize(
        negll, start, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-7, "fatol": 1e-9}
    )
    best = optimize.minimize(
        negll, best.x, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-10}
    )
    if not np.isfinite(best.fun):
        raise NotEnoughData("the Pareto/NBD model could not be fitted to this data")
    r, alpha, s, beta = np.exp(best.x)
    return ParetoNBD(float(r), float(alpha), float(s), float(beta), -float(best.fun))


# ---- Gamma-Gamma spend (Fader & Hardie 2013 note) ------------------------------------------------------------


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend model: mean transaction value per customer."""

    p: float
    q: float
    gamma: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        """Parameters (p, q, gamma) and log-likelihood."""
        return {"p": self.p, "q": self.q, "gamma": self.gamma, "log_likelihood": self.log_likelihood}

    def expected_value(self, x: FloatArray, m: FloatArray) -> FloatArray:
        """Expected mean transaction value given x repeat purchases with mean M (population mean without any)."""
        p, q, g = self.p, self.q, self.gamma
        population = p * g / (q - 1) if q > 1 else math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = p * (g + x * m) / (p * x + q - 1)
        out: FloatArray = np.where(x > 0, cond, population)
        return out


def fit_gamma_gamma(frequency: FloatArray, monetary: FloatArray) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma fit on the customers with repeat purchases (x > 0, mean value > 0)."""
    keep = (frequency > 0) & (monetary > 0)
    if keep.sum() < 2:
        raise NotEnoughData("the spend model needs customers with repeat purchases of positive value")
    (x, m), w = _compress(frequency[keep], monetary[keep])

    def negll(z: FloatArray) -> tuple[float, FloatArray]:
        p, q, g = np.exp(np.clip(z, -30, 30))
        px = p * x
        ll = (
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * math.log(g)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(g + m * x)
        )
        d_p = x * (special.digamma(px + q) - special.digamma(px) + np.log(m) + np.log(x) - np.log(g + m * x))
        d_q = special.digamma(px + q) - special.digamma(q) + math.log(g) - np.log(g + m * x)
        d_g = q / g - (px + q) / (g + m * x)
        total = _wsum(ll, w)
        if not np.isfinite(total):
            return math.inf, np.zeros(3)
        return -total, -np.array([_wsum(d_p, w) * p, _wsum(d_q, w) * q, _wsum(d_g, w) * g])

    params, ll = _fit(negll, np.array([1.0, 1.0, float(np.mean(m))]), ["p", "q", "gamma"])
    return GammaGamma(params["p"], params["q"], params["gamma"], ll)


def customer_value(
    bg: BGNBD,
    gg: GammaGamma,
    data: RFMData,
    horizon: float,
    discount_rate: float = 0.0,
    steps: int = 12,
) -> FloatArray:
    """Predicted value over HORIZON time units: expected purchases per step times expected spend, discounted per
    step at DISCOUNT_RATE (rate per step, e.g. a monthly rate with 12 steps over a year)."""
    value = gg.expected_value(data.frequency, data.monetary)
    total = np.zeros(len(data.frequency))
    prev = np.zeros(len(data.frequency))
    for i in range(1, steps + 1):
        cum = bg.expected_purchases(horizon * i / steps, data.frequency, data.recency, data.T)
        total += (cum - prev) * value / (1 + discount_rate) ** i
        prev = cum
    return total

"""Customer-lifetime-value math: BG/NBD for "how many more purchases", Gamma-Gamma for "how
much per purchase", and the discounted CLV that combines them.

Pure numpy/scipy, vectorised over customers, no Django and no database: the nightly job and
the `clv_fit` command feed it arrays and store what it returns. The models are those of

- Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
  Pareto/NBD model", Marketing Science 24(2) -- BG/NBD;
- Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
  analysis", JMR 42(4), and Fader & Hardie (2013), "The Gamma-Gamma model of monetary value"
  -- Gamma-Gamma.

Conventions (the ones both papers use, so the published parameters compare):

- Time is in periods of `unit_days` days (weeks by default) from the customer's FIRST
  purchase; that first purchase is not counted. `x` is the number of REPEAT purchase
  periods, `t_x` the time of the last one (0 when x == 0), `T` the time from the first
  purchase to the end of the calibration window.
- Purchases on the same day are one purchase (a basket split over two tills, or a web order
  plus a store pick-up, is one visit), with their amounts summed.
- Monetary value `m` is the mean spend of the repeat purchases only: the first purchase is
  often atypical (welcome offers) and the Gamma-Gamma likelihood is written for the x
  purchases that were counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

FloatArray = NDArray[np.float64]

# The optimiser works on log-parameters, so every parameter stays positive without
# constraints. The box only stops a line search from stepping to exp(700) and overflowing;
# an estimate that ends on it means the data do not identify that parameter (see FitError).
_LOG_BOUND = math.log(1e8)
# A fitted mean drop-out probability a/(a+b) below this is the no-drop-out limit (NBD).
NO_DROPOUT_BELOW = 1e-6


class FitError(ValueError):
    """The data cannot support a fit (too few customers, no repeat buyers, no convergence)."""


class _AtBound(FitError):
    """The optimum ran to the box on the parameters `at` (indices into theta); `res` is where
    the optimiser stopped."""

    def __init__(self, message: str, at: set[int], res: optimize.OptimizeResult):
        super().__init__(message)
        self.at, self.res = at, res


@dataclass(frozen=True)
class Summary:
    """Per-customer calibration summary, one entry per customer with a purchase on or before
    the calibration end, in the order of the sorted customer ids."""

    customer_ids: NDArray[Any]
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    m: FloatArray
    first_purchase: NDArray[np.datetime64]

    def __len__(self) -> int:
        return len(self.customer_ids)


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters: purchase rates lambda ~ Gamma(shape r, rate alpha), drop-out
    probabilities p ~ Beta(a, b). `log_likelihood` is the total over customers."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    # The limit the fit reaches when the history shows no drop-out at all (a/(a+b) -> 0):
    # every customer stays, purchases are the NBD model (Poisson rates, gamma across
    # customers). Then a = b = 0 stand for "no drop-out", P(alive) = 1 and the expected
    # purchases are (r+x)/(alpha+T) * t.
    no_dropout: bool = False


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters: spend per purchase z ~ Gamma(shape p, rate nu), with
    nu ~ Gamma(shape q, rate gamma) across customers. `log_likelihood` is the total over the
    repeat customers it was fitted on."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")


# --------------------------------------------------------------------------- summary


def _as_day(value: date | datetime | str | np.datetime64) -> np.datetime64:
    if isinstance(value, datetime):  # a datetime is a date too: drop the time of day first
        value = value.date()
    return np.datetime64(value, "D")


def summarise(
    customer_ids: ArrayLike,
    dates: ArrayLike,
    amounts: ArrayLike,
    *,
    calibration_end: date | str | np.datetime64,
    unit_days: float = 7,
) -> Summary:
    """Turn a transaction log into the (x, t_x, T, m) summary both models are fitted on.

    `dates` are days (datetime.date, "YYYY-MM-DD" or datetime64); only transactions on or
    before `calibration_end` count, so a customer whose first purchase is later is not in the
    summary at all (they were not a customer yet). Vectorised: one lexsort of the log, then
    run-length boundaries, so 10^6 transactions take well under a second.
    """
    ids = np.asarray(customer_ids)
    days = np.asarray(dates, dtype="datetime64[D]")
    spend = np.asarray(amounts, dtype=np.float64)
    if not (ids.ndim == days.ndim == spend.ndim == 1) or not (len(ids) == len(days) == len(spend)):
        raise ValueError("customer_ids, dates and amounts must be 1-d arrays of the same length")
    if unit_days <= 0:
        raise ValueError("unit_days must be positive")
    end = _as_day(calibration_end)

    keep = days <= end
    ids, days, spend = ids[keep], days[keep], spend[keep]
    if len(ids) == 0:
        empty = np.zeros(0)
        return Summary(ids[:0], empty, empty, empty, empty, days[:0])

    uniq_ids, cust = np.unique(ids, return_inverse=True)
    day_num = days.astype(np.int64)
    order = np.lexsort((day_num, cust))  # by customer, then by day
    cust, day_num, spend = cust[order], day_num[order], spend[order]

    # One row per (customer, day): same-day purchases are one purchase, amounts summed.
    new_day = np.ones(len(cust), dtype=bool)
    new_day[1:] = (cust[1:] != cust[:-1]) | (day_num[1:] != day_num[:-1])
    starts = np.flatnonzero(new_day)
    day_cust = cust[starts]
    day_of = day_num[starts]
    day_spend = np.add.reduceat(spend, starts)

    n = len(uniq_ids)
    n_days = np.bincount(day_cust, minlength=n)
    first_row = np.concatenate(([0], np.cumsum(n_days)[:-1]))
    last_row = first_row + n_days - 1
    first_day = day_of[first_row]
    last_day = day_of[last_row]

    x = (n_days - 1).astype(np.float64)
    t_x = (last_day - first_day) / unit_days
    T = (end.astype(np.int64) - first_day) / unit_days
    repeat_spend = np.bincount(day_cust, weights=day_spend, minlength=n) - day_spend[first_row]
    m = np.divide(repeat_spend, x, out=np.zeros(n), where=x > 0)
    return Summary(
        customer_ids=uniq_ids,
        x=x,
        t_x=t_x.astype(np.float64),
        T=T.astype(np.float64),
        m=m,
        first_purchase=first_day.astype("datetime64[D]"),
    )


# --------------------------------------------------------------------------- BG/NBD


def _rfm_arrays(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[FloatArray, ...]:
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    x, t_x, T = np.broadcast_arrays(x, t_x, T)
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T):
        raise ValueError("need x >= 0 and 0 <= t_x <= T")
    return x, t_x, T


def _bgnbd_loglik(
    theta: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-customer log-likelihood and its gradient with respect to log(r, alpha, a, b).

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

    written as A1 + A2 + logaddexp(A3, A4) so that neither (alpha+T)^(r+x) nor the Beta
    functions are ever formed: with x in the hundreds they over/underflow as plain floats.
    """
    r, alpha, a, b = np.exp(theta)
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)  # b+x-1 is only used (and > 0) when x > 0

    a1 = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
    a2 = (
        special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    log_at = np.log(alpha + T)
    log_atx = np.log(alpha + t_x)
    a3 = -(r + x) * log_at
    a4 = np.where(repeat, math.log(a) - np.log(b_x1) - (r + x) * log_atx, -np.inf)
    mix = np.logaddexp(a3, a4)
    ll = a1 + a2 + mix

    w4 = np.exp(a4 - mix)  # share of the "dropped out after t_x" branch; 0 when x == 0
    w3 = 1.0 - w4
    d_r = special.digamma(r + x) - special.digamma(r) + math.log(alpha)
    d_r -= w3 * log_at + w4 * log_atx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    d_ab = special.digamma(a + b) - special.digamma(a + b + x)
    d_a = d_ab + w4 / a
    d_b = d_ab + special.digamma(b + x) - special.digamma(b) - w4 / b_x1
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])  # chain rule to log-params
    return ll, grad


def bgnbd_log_likelihood(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike):
    """Per-customer BG/NBD log-likelihood at `params` (for diagnostics and model comparison)."""
    x, t_x, T = _rfm_arrays(x, t_x, T)
    if params.no_dropout:
        return _nbd_loglik(np.log([params.r, params.alpha]), x, T)[0]
    theta = np.log([params.r, params.alpha, params.a, params.b])
    return _bgnbd_loglik(theta, x, t_x, T)[0]


def _fit(objective, theta0: FloatArray, what: str) -> optimize.OptimizeResult:
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(theta0)
    res = optimize.minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-8},
    )
    # L-BFGS-B sometimes stops with "abnormal termination in line search" AT the optimum,
    # when the objective is flat to rounding: accept that if the gradient is ~0 there.
    _, grad = objective(res.x)
    if not np.all(np.isfinite(res.x)) or (not res.success and np.max(np.abs(grad)) > 1e-5):
        raise FitError(f"{what} fit did not converge: {res.message}")
    at = {i for i, v in enumerate(res.x) if abs(v) >= _LOG_BOUND - 1e-6}
    if at:
        raise _AtBound(
            f"{what} fit ran to a parameter bound; the data do not identify the model", at, res
        )
    return res


def bgnbd_fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BGNBDParams:
    """Maximum-likelihood BG/NBD fit over (r, alpha, a, b).

    Optimises the MEAN log-likelihood (same optimum, gradient of order 1 whatever the number
    of customers, so the tolerances mean the same for 100 or 10^6 customers) on the log
    parameters with an analytic gradient; the reported log_likelihood is the TOTAL, as in
    the paper (CDNOW: -9582.4).
    """
    x, t_x, T = _rfm_arrays(x, t_x, T)
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    if len(x) < 4:
        raise FitError("BG/NBD needs at least a handful of customers")
    if not np.any(x > 0):
        raise FitError("BG/NBD needs some customers with repeat purchases")
    n = len(x)

    def objective(theta):
        ll, grad = _bgnbd_loglik(theta, x, t_x, T)
        return -ll.sum() / n, -grad.sum(axis=1) / n

    # Start from r=1 and alpha = the mean observation window (a population buying about once
    # per window), a, b = 1 (uniform drop-out probability): scale-aware, so weeks or days work.
    theta0 = np.log([1.0, max(float(T.mean()), 1e-3), 1.0, 1.0])
    try:
        res = _fit(objective, theta0, "BG/NBD")
    except _AtBound as bound:
        if not bound.at <= {2, 3}:
            raise  # the purchase-rate part is not identified either
        return _nbd_limit_fit(x, T, bgnbd_ll=float(-bound.res.fun * n))
    r, alpha, a, b = np.exp(res.x)
    if a / (a + b) < NO_DROPOUT_BELOW:
        # On its way to the limit (a -> 0, b -> inf): the formulas lose their digits there
        # (huge b in the hypergeometric terms), the limit's closed forms do not.
        return _nbd_limit_fit(x, T, bgnbd_ll=float(-res.fun * n))
    return BGNBDParams(
        r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=float(-res.fun * n)
    )


def _nbd_loglik(theta: FloatArray, x: FloatArray, T: FloatArray):
    """The BG/NBD likelihood's limit with no drop-out, per customer, with its gradient with
    respect to log(r, alpha): G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))."""
    r, alpha = np.exp(theta)
    log_at = np.log(alpha + T)
    ll = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) - (r + x) * log_at
    d_r = special.digamma(r + x) - special.digamma(r) + math.log(alpha) - log_at
    d_alpha = r / alpha - (r + x) / (alpha + T)
    return ll, np.stack([d_r * r, d_alpha * alpha])


def _nbd_limit_fit(x: FloatArray, T: FloatArray, *, bgnbd_ll: float) -> BGNBDParams:
    """The drop-out parameters ran to the box: if that is the no-drop-out limit (the NBD
    model fits at least as well as where BG/NBD stopped), fit it and say so; otherwise the
    drop-out is not identified (e.g. one same p for everyone) and the fit fails."""
    n = len(x)

    def objective(theta):
        ll, grad = _nbd_loglik(theta, x, T)
        return -ll.sum() / n, -grad.sum(axis=1) / n

    res = _fit(objective, np.log([1.0, max(float(T.mean()), 1e-3)]), "NBD")
    ll = float(-res.fun * n)
    if ll < bgnbd_ll - 1e-6 * max(1.0, abs(bgnbd_ll)):
        raise FitError("BG/NBD drop-out parameters are not identified by this history")
    r, alpha = np.exp(res.x)
    return BGNBDParams(
        r=float(r), alpha=float(alpha), a=0.0, b=0.0, log_likelihood=ll, no_dropout=True
    )


def _log_drop_odds(params: BGNBDParams, x: FloatArray, t_x: FloatArray, T: FloatArray):
    """log of  a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x), -inf when x == 0 (never dropped)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)
    odds = math.log(a) - np.log(b_x1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(repeat, odds, -np.inf)


def bgnbd_p_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(customer still active at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((a+T)/(a+t_x))^(r+x)).

    A customer with no repeat purchase has not had a chance to drop out (in BG/NBD drop-out
    happens just after a purchase), so P(alive) = 1 for x == 0. Computed as
    expit(-log odds): a loyal customer long silent has odds of 10^300 and more.
    """
    x, t_x, T = _rfm_arrays(x, t_x, T)
    if params.no_dropout:
        return np.ones_like(x)
    return special.expit(-_log_drop_odds(params, x, t_x, T))


def _bgnbd_future_fraction(params: BGNBDParams, x, T, t) -> FloatArray:
    """((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t)), via Euler's
    transformation 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z):

        = (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z).

    The textbook form multiplies a huge 2F1 (its first two arguments grow with x) by a tiny
    power, and loses all digits for frequent buyers over long horizons; the transformed one
    has small fixed upper arguments and a lower one that grows with x, so it tends to 1.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    return (1.0 - z) ** (a - 1.0) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)


def bgnbd_expected_purchases(
    params: BGNBDParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Expected number of purchases in (T, T+t] given the customer's history (FHL 2005, eq. 10):

        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
        / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)),   z = t/(alpha+T+t).

    All arguments broadcast, so `t` can be a column of horizons against a row of customers.
    The formula is 0/0 at a == 1 (its limit is finite): within 1e-6 of it, it is evaluated as
    the mean of a = 1 -/+ 1e-5, exact to ~1e-10 (the error is O(eps^2) plus rounding / eps).
    """
    x, t_x, T = _rfm_arrays(x, t_x, T)
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    if params.no_dropout:  # still buying at their posterior mean rate (r+x)/(alpha+T)
        return (params.r + x) / (params.alpha + T) * t
    if abs(params.a - 1.0) < 1e-6:
        return 0.5 * sum(
            _bgnbd_expected(replace(params, a=a), t, x, t_x, T) for a in (1.0 - 1e-5, 1.0 + 1e-5)
        )
    return _bgnbd_expected(params, t, x, t_x, T)


def _bgnbd_expected(params: BGNBDParams, t, x, t_x, T) -> FloatArray:
    a, b = params.a, params.b
    future = _bgnbd_future_fraction(params, x, T, t)
    p_alive = special.expit(-_log_drop_odds(params, x, t_x, T))
    return (a + b + x - 1.0) / (a - 1.0) * (1.0 - future) * p_alive


# --------------------------------------------------------------------------- Gamma-Gamma


def _gg_loglik(theta: FloatArray, x: FloatArray, m: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-customer log density of the mean spend m over x purchases, and its gradient with
    respect to log(p, q, gamma):

        G(px+q) / (G(px) G(q)) * gamma^q x^(px) m^(px-1) / (gamma + m x)^(px+q)
    """
    p, q, g = np.exp(theta)
    px = p * x
    log_gmx = np.log(g + m * x)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * math.log(g)
        + px * np.log(x)
        + (px - 1.0) * np.log(m)
        - (px + q) * log_gmx
    )
    psi_pxq = special.digamma(px + q)
    d_p = x * (psi_pxq - special.digamma(px) + np.log(x) + np.log(m) - log_gmx)
    d_q = psi_pxq - special.digamma(q) + math.log(g) - log_gmx
    d_g = q / g - (px + q) / (g + m * x)
    return ll, np.stack([d_p * p, d_q * q, d_g * g])


def gamma_gamma_fit(x: ArrayLike, m: ArrayLike) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma fit over (p, q, gamma) on the repeat customers.

    Only customers with x > 0 AND m > 0 enter: x == 0 customers have no repeat spend to
    model, and a zero mean spend (free orders, fully discounted baskets) has zero density
    under a Gamma. Note the model assumes spend is independent of frequency; check
    corrcoef(x, m) on real data before trusting its CLV.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    m = np.asarray(m, dtype=np.float64).ravel()
    if x.shape != m.shape:
        raise ValueError("x and m must have the same length")
    use = (x > 0) & (m > 0) & np.isfinite(m)
    x, m = x[use], m[use]
    if len(x) < 4:
        raise FitError("Gamma-Gamma needs at least a handful of customers with repeat purchases")
    n = len(x)

    def objective(theta):
        ll, grad = _gg_loglik(theta, x, m)
        return -ll.sum() / n, -grad.sum(axis=1) / n

    # Method-of-moments-ish start: q = 2 and p = 1 put the population mean spend, p*gamma/(q-1),
    # at gamma, so gamma starts at the observed mean spend.
    theta0 = np.log([1.0, 2.0, float(np.average(m, weights=x))])
    res = _fit(objective, theta0, "Gamma-Gamma")
    p, q, g = np.exp(res.x)
    return GammaGammaParams(
        p=float(p), q=float(q), gamma=float(g), log_likelihood=float(-res.fun * n)
    )


def gamma_gamma_expected_spend(params: GammaGammaParams, x: ArrayLike, m: ArrayLike) -> FloatArray:
    """Expected spend per future purchase: the posterior mean p (gamma + m x) / (p x + q - 1),
    a credibility-weighted blend of the customer's own mean m and the population mean
    p gamma / (q - 1); with x == 0 only the population mean is left.

    The population mean is finite only for q > 1; asking for it with q <= 1 is a ValueError
    (an infinite expected spend would silently poison every CLV it touched).
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    x, m = np.broadcast_arrays(x, m)
    p, q, g = params.p, params.q, params.gamma
    repeat = x > 0
    if np.any(~repeat) and q <= 1.0:
        raise ValueError(f"q = {q:.4g} <= 1: the spend distribution has no finite mean")
    denom = np.where(repeat, p * x + q - 1.0, 1.0)
    if np.any(denom <= 0):
        raise ValueError("p x + q <= 1 for some customer: their expected spend is infinite")
    own = p * (g + m * x) / denom
    population = p * g / (q - 1.0) if q > 1.0 else np.nan
    return np.where(repeat, own, population)


# --------------------------------------------------------------------------- CLV


def clv(
    bgnbd: BGNBDParams,
    gg: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    m: ArrayLike,
    *,
    months: int = 12,
    monthly_discount: float = 0.01,
    weeks_per_month: float = 4.345,
) -> FloatArray:
    """Discounted expected spend over the next `months` months:

        sum_i [E(purchases by month i) - E(purchases by month i-1)] * E(spend) / (1+d)^i

    with the BG/NBD cumulative expectation evaluated at i * weeks_per_month weeks (time unit
    weeks, as the models were fitted). Purchases are discounted at the end of the month they
    fall in. One (customers x months+1) evaluation, no Python loop over customers.
    """
    if months < 1:
        raise ValueError("months must be >= 1")
    x, t_x, T = _rfm_arrays(x, t_x, T)
    spend = gamma_gamma_expected_spend(gg, x, m)
    horizons = np.arange(months + 1, dtype=np.float64) * weeks_per_month  # 0, 1, ..., months
    cumulative = bgnbd_expected_purchases(
        bgnbd, horizons, x[..., None], t_x[..., None], T[..., None]
    )
    per_month = np.diff(cumulative, axis=-1)
    discount = (1.0 + monthly_discount) ** -np.arange(1, months + 1, dtype=np.float64)
    return (per_month @ discount) * spend


# --------------------------------------------------------------------------- simulation


def simulate(
    n: int,
    bgnbd: BGNBDParams,
    gg: GammaGammaParams,
    *,
    T: ArrayLike = 52.0,
    seed: int | np.random.Generator | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Draw n customers from the generative models and return their (x, t_x, T, m).

    BG/NBD: lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b); purchases follow a Poisson
    process of rate lambda from the first purchase at time 0, and after each REPEAT purchase
    the customer leaves with probability p. Rather than stepping through purchases this
    draws, exactly in distribution:
      K ~ Geometric(p) on {1, 2, ...}: the repeat purchase after which they would leave;
      N ~ Poisson(lambda T): the purchases an immortal customer would make in (0, T];
      x = min(K, N), and since Poisson event times given N are N sorted uniforms on (0, T],
      t_x = T * Beta(x, N - x + 1) (the x-th order statistic).
    Gamma-Gamma: nu ~ Gamma(q, rate gamma) per customer, each purchase z ~ Gamma(p, rate nu);
    the sum of x of them is Gamma(p x, rate nu), so m = that / x (0 when x == 0).
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    T_arr = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    if np.any(T_arr < 0):
        raise ValueError("T must be >= 0")

    lam = rng.gamma(bgnbd.r, 1.0 / bgnbd.alpha, size=n)
    drop = rng.beta(bgnbd.a, bgnbd.b, size=n)
    drop = np.clip(drop, 1e-12, 1.0)  # Beta draws can underflow to 0; Geometric needs p > 0
    k = rng.geometric(drop)
    n_events = rng.poisson(lam * T_arr)
    x = np.minimum(k, n_events)
    repeat = x > 0
    order_stat = rng.beta(np.where(repeat, x, 1), np.where(repeat, n_events - x + 1, 1))
    t_x = np.where(repeat, T_arr * order_stat, 0.0)

    nu = rng.gamma(gg.q, 1.0 / gg.gamma, size=n)
    total = rng.gamma(np.where(repeat, gg.p * x, 1.0), 1.0 / nu)
    m = np.where(repeat, total / np.maximum(x, 1), 0.0)
    return x.astype(np.float64), t_x, T_arr, m

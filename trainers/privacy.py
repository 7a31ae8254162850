"""The privacy account of differentially private training (DP-SGD), kept with `dp-accounting`.

A DP-SGD step clips each example's gradient to L2 norm `l2_norm_clip`, sums them, adds Gaussian
noise of standard deviation `noise_multiplier * l2_norm_clip` and averages over the batch. One
step is a subsampled Gaussian mechanism; `steps` of them compose. The accountant (Rényi DP, or
privacy loss distributions, which are tighter) turns that into (epsilon, delta): with probability
at least 1 - delta, no output of training tells whether any one example was in the data by more
than a factor e**epsilon.

The account assumes that each batch is a Poisson sample of the N examples at rate B / N, the
assumption every DP-SGD library's accountant makes. The input pipeline draws shuffled batches of
exactly B examples, as DP-SGD is used in practice (TensorFlow Privacy's tutorials, Opacus
without its Poisson sampler); that is recorded beside the figures.
"""

from __future__ import annotations

import dataclasses
import math

from synthblend.zoo.registry import UsageError

ACCOUNTANTS = ("rdp", "pld")
SAMPLING = ("the account assumes Poisson sampling of each batch at rate batch_size / num_examples; the pipeline "
            "draws shuffled batches of exactly batch_size examples")


def _accountant(kind: str):
    from dp_accounting import pld, rdp

    if kind not in ACCOUNTANTS:
        raise UsageError(f"accountant {kind!r} is not one of {', '.join(ACCOUNTANTS)}")
    return rdp.RdpAccountant() if kind == "rdp" else pld.PLDAccountant()


def _event(noise_multiplier: float, sample_rate: float, steps: int, release_noise: float | None = None):
    """DP-SGD's `steps` subsampled Gaussian steps, after the table encoder's Gaussian release
    (noise multiplier `release_noise`, None: no release)."""
    import dp_accounting

    events = [dp_accounting.GaussianDpEvent(release_noise)] if release_noise is not None else []
    if steps > 0:
        events.append(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
            int(steps)))
    return events[0] if len(events) == 1 else dp_accounting.ComposedDpEvent(events)


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp",
            release_noise: float | None = None) -> float:
    """The epsilon spent by `steps` DP-SGD steps at `noise_multiplier` and `sample_rate` (B / N),
    with the release of noise multiplier `release_noise` before them."""
    steps = max(int(steps), 0)
    if steps == 0 and release_noise is None:
        return 0.0
    if (steps and noise_multiplier <= 0) or (release_noise is not None and release_noise <= 0):
        return math.inf
    account = _accountant(accountant)
    account.compose(_event(noise_multiplier, sample_rate, steps, release_noise))
    return float(account.get_epsilon(delta))


def noise_for(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp",
              release_noise: float | None = None) -> float:
    """The smallest noise multiplier whose `steps` steps (after the release) spend at most `target_epsilon`."""
    import dp_accounting

    return float(dp_accounting.calibrate_dp_mechanism(
        lambda: _accountant(accountant), lambda sigma: _event(sigma, sample_rate, steps, release_noise),
        target_epsilon, delta, dp_accounting.LowerEndpointAndGuess(1e-2, 1.0), tol=1e-4,
    ))


def release_noise_for(epsilon_share: float, delta: float, accountant: str = "rdp") -> float:
    """The noise multiplier of one Gaussian release (L2 sensitivity 1) spending `epsilon_share`."""
    import dp_accounting

    return float(dp_accounting.calibrate_dp_mechanism(
        lambda: _accountant(accountant), dp_accounting.GaussianDpEvent, epsilon_share, delta,
        dp_accounting.LowerEndpointAndGuess(1e-2, 1.0), tol=1e-4,
    ))


def steps_within(target_epsilon: float, delta: float, noise_multiplier: float, sample_rate: float,
                 accountant: str = "rdp", most: int = 10**8, release_noise: float | None = None) -> int:
    """The most steps at `noise_multiplier` that spend at most `target_epsilon` (0 when even one
    step spends more)."""
    def within(steps):
        return epsilon(noise_multiplier, sample_rate, steps, delta, accountant, release_noise) <= target_epsilon

    if not within(1):
        return 0
    low, high = 1, 1
    while high < most and within(high * 2):
        high *= 2
    high = min(high * 2, most)
    while low < high:  # the last count within the budget lies in [low, high)
        middle = (low + high + 1) // 2
        if within(middle):
            low = middle
        else:
            high = middle - 1
    return low


# The share of a private table run's budget spent on its encoder's quantile histograms.
RELEASE_SHARE = 0.1


def default_delta(num_examples: int) -> float:
    """The largest power of ten below 1 / (10 N)."""
    return 10.0 ** math.floor(math.log10(1.0 / (10 * num_examples)))


def table_release_noise(num_rows: int, *, batch_size: int, steps: int, target_epsilon: float | None = None,
                        noise_multiplier: float | None = None, delta: float | None = None,
                        accountant: str = "rdp") -> float:
    """The noise multiplier of a private table's quantile histograms (`tabular.Private`): they spend
    `RELEASE_SHARE` of `target_epsilon`, or of what the planned steps at `noise_multiplier` spend."""
    delta = delta if delta is not None else default_delta(max(num_rows, 1))
    budget = target_epsilon
    if budget is None:
        budget = epsilon(noise_multiplier, min(1.0, batch_size / max(num_rows, 1)), steps, delta, accountant)
    if not math.isfinite(budget):
        raise UsageError(f"--noise_multiplier={noise_multiplier:g} gives no finite epsilon; pass a positive noise")
    return release_noise_for(RELEASE_SHARE * budget, delta, accountant)


@dataclasses.dataclass
class Privacy:
    """The DP-SGD settings of a run and its account.

    Either `target_epsilon` (the noise is calibrated so that `planned_steps` spend it) or
    `noise_multiplier` (the epsilon follows) is given; with both, training stops at the last step
    the budget allows. `delta` lies below 1 / `num_examples` (`plan` chooses one by default).
    """

    l2_norm_clip: float
    noise_multiplier: float
    delta: float
    num_examples: int
    batch_size: int
    target_epsilon: float | None = None
    accountant: str = "rdp"
    release_noise: float | None = None

    @property
    def sample_rate(self) -> float:
        return min(1.0, self.batch_size / self.num_examples)

    def epsilon_at(self, steps: int) -> float:
        return epsilon(self.noise_multiplier, self.sample_rate, steps, self.delta, self.accountant, self.release_noise)

    def last_step(self) -> int | None:
        """The last step within `target_epsilon` (None without a target)."""
        if self.target_epsilon is None:
            return None
        return steps_within(self.target_epsilon, self.delta, self.noise_multiplier, self.sample_rate, self.accountant,
                            release_noise=self.release_noise)

    def record(self, steps: int) -> dict:
        """What config.json, the report and the export's metadata say of the guarantee at `steps`."""
        return {
            "epsilon": self.epsilon_at(steps), "delta": self.delta, "steps": int(steps),
            "noise_multiplier": self.noise_multiplier, "l2_norm_clip": self.l2_norm_clip,
            "batch_size": self.batch_size, "num_examples": self.num_examples, "sample_rate": self.sample_rate,
            "target_epsilon": self.target_epsilon, "accountant": self.accountant, "sampling": SAMPLING,
            "release_noise": self.release_noise,
        }


def plan(num_examples: int, batch_size: int, steps: int, *, target_epsilon: float | None = None,
         noise_multiplier: float | None = None, delta: float | None = None, l2_norm_clip: float = 1.0,
         accountant: str = "rdp", release_noise: float | None = None) -> Privacy:
    """The run's `Privacy`: the noise calibrated for `target_epsilon` over `steps` steps (after a
    release of noise multiplier `release_noise`, a private table's histograms) when no
    `noise_multiplier` is given; `delta` by default the largest power of ten below 1 / (10 N)."""
    if target_epsilon is None and noise_multiplier is None:
        raise UsageError("differentially private training needs --target_epsilon or --noise_multiplier")
    if num_examples < 2:
        raise UsageError(f"differentially private training needs at least 2 examples; the data has {num_examples}")
    if batch_size > num_examples:
        raise UsageError(f"--batch_size={batch_size} is larger than the {num_examples} examples; DP-SGD samples "
                         "batches smaller than the data")
    if delta is None:
        delta = default_delta(num_examples)
    elif not delta < 1.0 / num_examples:
        raise UsageError(f"--delta={delta} must be below 1 / N = {1.0 / num_examples:.3g} ({num_examples} examples): "
                         "a delta of 1 / N allows the release of one whole example")
    rate = min(1.0, batch_size / num_examples)
    if release_noise is not None and target_epsilon is not None:
        spent = epsilon(0.0, rate, 0, delta, accountant, release_noise)
        if spent >= target_epsilon:
            raise UsageError(f"the table's quantile histograms alone spend epsilon {spent:.3g} at --delta={delta:g}, "
                             f"all of --target_epsilon={target_epsilon:g}; pass the same delta to both, or a larger "
                             "target")
    if noise_multiplier is None:
        noise_multiplier = noise_for(target_epsilon, delta, rate, steps, accountant, release_noise)
    return Privacy(l2_norm_clip=float(l2_norm_clip), noise_multiplier=float(noise_multiplier), delta=float(delta),
                   num_examples=int(num_examples), batch_size=int(batch_size), target_epsilon=target_epsilon,
                   accountant=accountant, release_noise=None if release_noise is None else float(release_noise))


def guarantee(record: dict) -> dict | str:
    """The run's differential privacy at its step, and what it covers; a sentence without one."""
    account = record.get("privacy")
    if not account:
        return ("none: trained without differential privacy; the distances to closest records and the attack "
                "are measurements, not a guarantee")
    step = int(record.get("step") or account["steps"])
    release = account.get("release_noise")
    spent = epsilon(account["noise_multiplier"], account["sample_rate"], step, account["delta"], account["accountant"],
                    release)
    table = ""
    if release is not None or (record.get("data_spec") or {}).get("table"):
        table = ("; the table's encoder reads nothing from the rows but through the guarantee: kinds, bounds, "
                 "categories, words and label classes as the schema declares them"
                 + (f", quantile knots from histograms with Gaussian noise (noise multiplier {release:.4g}) "
                    "counted in this epsilon" if release is not None else ""))
    return {
        "epsilon": spent, "delta": account["delta"], "step": step,
        **{key: account[key] for key in ("noise_multiplier", "l2_norm_clip", "batch_size", "num_examples",
                                         "accountant")},
        "release_noise": release,
        "covers": ("the trained weights and everything drawn from them (samples, blends, exports): "
                   f"({spent:.3g}, {account['delta']:.3g})-differential privacy for adding or removing one "
                   "training example, by DP-SGD on every network that reads real examples; the number of "
                   "examples is treated as public" + table),
        "assumes": account["sampling"],
        "does_not_cover": "this report and the training pictures, which show real records",
    }

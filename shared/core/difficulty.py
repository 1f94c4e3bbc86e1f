"""The difficulty probe of dynamic unit-test scaling (CodeRM section 3.2), pure numpy.

Dynamic scaling gives a problem more unit tests the more they are worth on it, which
depends on its difficulty: the policy's pass rate lambda (the share of correct solution
samples). Execution results give lambda only after solutions were sampled and run; the
paper predicts it beforehand with a *probe*: a small feed-forward network on a hidden
state of the policy model reading the problem, trained on the pass rates of past runs.
This module is that network and its training; reading the feature is the generator's
business (vLLM), and collecting the pass rates the CLI's.

The model: standardised features -> one hidden ReLU layer -> one sigmoid unit, so the
output is a pass rate in [0, 1]:

    p = sigmoid(w2 . relu(W1^T (x - mean) / scale + b1) + b2)

Why these choices:

- **Binary cross-entropy against the observed pass rate** (a "soft label"): lambda is
  the mean of Bernoulli outcomes, and the cross-entropy is the log-likelihood of those
  outcomes under p, so it is the natural loss for a probability; its gradient with
  respect to the logit is simply ``p - lambda``. Its minimum is the entropy of lambda,
  not 0, so its value is read against a baseline (below), not against zero.
- **Standardisation** of each feature with the training split's mean and standard
  deviation: hidden states of language models have a few dimensions orders of
  magnitude larger than the rest, which would otherwise dominate the first layer.
- **Full-batch Adam**, written out: the training sets are small (one row a problem,
  hundreds to a few thousand), so a full batch is cheap and makes every step, and the
  whole fit, a deterministic function of the data and the seed.
- **L2 weight decay and early stopping** on a held-out split: the feature has
  thousands of dimensions for a few hundred labels, so the network can memorise its
  training set; the parameters kept are those of the epoch with the lowest held-out
  loss, and training stops ``patience`` epochs after the last improvement.
- **Seeded initialisation** (He-normal first layer, small output layer, output bias at
  the logit of the training mean): the untrained probe already predicts the average
  pass rate, and the same seed on the same data gives the same probe, bit for bit.

Everything a saved probe needs travels with it in one JSON document: the parameters,
the standardisation, the training settings and metrics, and metadata naming the policy
model (by name and checkpoint fingerprint) and the feature it was trained on, so a
probe is never applied to another model's hidden states by mistake. Floats are written
with Python's shortest round-trip representation, so loading gives back the same
numbers exactly. Reading and writing files is the caller's (this module does no I/O).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

#: The ``format`` field of a saved probe, and the version of its layout.
PROBE_FORMAT = "coderm-difficulty-probe"
PROBE_VERSION = 1
#: A feature whose training-split standard deviation is below this is left unscaled.
MIN_SCALE = 1e-12
#: Pass rates are clipped to this distance from 0 and 1 for the initial output bias.
RATE_EPSILON = 1e-3
#: Adam's constants (Kingma and Ba's defaults).
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8


class ProbeFormatError(ValueError):
    """A saved probe that cannot be read: not JSON, another format or version, or
    parameters whose shapes or values do not fit together."""


@dataclass(frozen=True)
class ProbeSettings:
    """How a probe is trained.

    ``hidden_units``: width of the ReLU layer. ``learning_rate``: Adam's step size.
    ``weight_decay``: L2 penalty on the two weight matrices (not the biases), added to
    the mean loss. ``max_epochs``: full-batch steps at most. ``patience``: steps without
    a lower held-out loss before stopping. ``validation_fraction``: share of the
    problems held out (at least one problem, and at least one is left to train on).
    ``seed``: the split and the initialisation.
    """

    hidden_units: int = 64
    learning_rate: float = 0.01
    weight_decay: float = 1e-3
    max_epochs: int = 2000
    patience: int = 100
    validation_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_units < 1:
            raise ValueError("hidden_units must be at least 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError("learning_rate must be a positive number")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError("weight_decay must be a non-negative number")
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError("max_epochs and patience must be at least 1")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must lie strictly between 0 and 1")

    def split_sizes(self, problems: int) -> tuple[int, int]:
        """``(train, validation)`` sizes for ``problems`` labelled problems: the
        validation split is ``round(fraction * problems)``, at least 1, and leaves at
        least one problem to train on; ``ValueError`` below two problems."""
        if problems < 2:
            raise ValueError(
                f"a probe needs at least 2 labelled problems (one to train on, one held "
                f"out), got {problems}"
            )
        held_out = min(max(1, round(self.validation_fraction * problems)), problems - 1)
        return problems - held_out, held_out


@dataclass(frozen=True)
class ProbeMetadata:
    """What a probe was trained on, so that it is applied to the same thing.

    ``policy`` and ``policy_fingerprint``: the policy model's registered name and its
    checkpoint's content fingerprint (the fingerprint is what must match: the same
    weights under another name give the same features). ``feature_kind``: how the
    feature was read (a name the reader defines), ``feature_dim``: its length.
    ``training_runs``: the runs whose pass rates were the labels. ``context``: other
    facts worth keeping (prompt format, dtype, benchmarks, creation time), as text.
    """

    policy: str
    policy_fingerprint: str
    feature_kind: str
    feature_dim: int
    training_runs: tuple[str, ...] = ()
    context: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.feature_dim < 1:
            raise ValueError("feature_dim must be at least 1")


@dataclass(frozen=True)
class SplitMetrics:
    """How well a probe's predictions match the observed pass rates on one split.

    ``bce``: mean binary cross-entropy (its floor is the labels' own entropy, not 0).
    ``mae``, ``rmse``: mean absolute and root mean square error of the predicted pass
    rate. ``baseline_mae``: the mean absolute error of predicting the training split's
    mean pass rate for every problem, the error a probe must beat to be worth anything.
    ``pearson``: correlation of predicted and observed pass rates; ``None`` when it is
    undefined (fewer than two problems, or either side constant).
    """

    problems: int
    bce: float
    mae: float
    rmse: float
    baseline_mae: float
    pearson: float | None


@dataclass(frozen=True)
class TrainingReport:
    """The outcome of training: metrics of the kept parameters on both splits, the epoch
    they come from (0: the initialisation was never beaten) and the epochs run."""

    train: SplitMetrics
    validation: SplitMetrics
    best_epoch: int
    epochs: int


@dataclass(frozen=True)
class ProbeParameters:
    """The network's parameters: ``w1`` (features x hidden), ``b1`` (hidden), ``w2``
    (hidden), ``b2`` (a 1-element array, so Adam treats it like the others)."""

    w1: Array
    b1: Array
    w2: Array
    b2: Array

    def arrays(self) -> tuple[Array, Array, Array, Array]:
        return self.w1, self.b1, self.w2, self.b2

    def copy(self) -> ProbeParameters:
        return ProbeParameters(self.w1.copy(), self.b1.copy(), self.w2.copy(), self.b2.copy())


def _sigmoid(z: Array) -> Array:
    """The logistic function, without overflow for large ``|z|``."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def _forward(params: ProbeParameters, x: Array) -> tuple[Array, Array, Array]:
    """Pre-activations of the hidden layer, its activations, and the output logits."""
    pre = x @ params.w1 + params.b1
    hidden = np.maximum(pre, 0.0)
    logits = hidden @ params.w2 + params.b2[0]
    return pre, hidden, logits


def _bce(logits: Array, rates: Array) -> float:
    """Mean binary cross-entropy of soft labels ``rates`` at ``logits``:
    ``softplus(z) - y z`` is ``-(y log p + (1 - y) log(1 - p))`` with p = sigmoid(z),
    computed without taking the log of a rounded-off probability."""
    return float(np.mean(np.logaddexp(0.0, logits) - rates * logits))


def pearson(predicted: ArrayLike, observed: ArrayLike) -> float | None:
    """Pearson correlation of two equally long sequences; ``None`` when undefined
    (fewer than two values, or either sequence constant)."""
    a = np.asarray(predicted, dtype=np.float64)
    b = np.asarray(observed, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("pearson needs two 1-D sequences of the same length")
    if a.size < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(da @ da) * float(db @ db))
    if denominator <= 0.0 or not math.isfinite(denominator):
        return None
    return max(-1.0, min(1.0, float(da @ db) / denominator))


def _metrics(logits: Array, rates: Array, baseline: float) -> SplitMetrics:
    predicted = _sigmoid(logits)
    errors = predicted - rates
    return SplitMetrics(
        problems=int(rates.size),
        bce=_bce(logits, rates),
        mae=float(np.mean(np.abs(errors))),
        rmse=float(math.sqrt(float(np.mean(errors**2)))),
        baseline_mae=float(np.mean(np.abs(rates - baseline))),
        pearson=pearson(predicted, rates),
    )


def _check_features(features: ArrayLike) -> Array:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"features must be a non-empty 2-D array (problems x dims), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    return x


def _check_rates(pass_rates: ArrayLike, problems: int) -> Array:
    y = np.asarray(pass_rates, dtype=np.float64)
    if y.ndim != 1 or y.size != problems:
        raise ValueError(f"need one pass rate a problem: {problems} problems, shape {y.shape}")
    if not np.all(np.isfinite(y)) or np.any(y < 0.0) or np.any(y > 1.0):
        raise ValueError("pass rates must lie in [0, 1]")
    return y


def _initial(
    settings: ProbeSettings, dims: int, mean_rate: float, rng: np.random.Generator
) -> ProbeParameters:
    """He-normal first layer (keeps the ReLU activations' scale for standardised
    inputs), a small output layer, and the output bias at the logit of the training
    mean: the untrained probe predicts about the average pass rate."""
    hidden = settings.hidden_units
    rate = min(max(mean_rate, RATE_EPSILON), 1.0 - RATE_EPSILON)
    return ProbeParameters(
        w1=rng.normal(0.0, math.sqrt(2.0 / dims), size=(dims, hidden)),
        b1=np.zeros(hidden),
        w2=rng.normal(0.0, 0.1 / math.sqrt(hidden), size=hidden),
        b2=np.array([math.log(rate / (1.0 - rate))]),
    )


def _gradients(
    params: ProbeParameters, x: Array, rates: Array, weight_decay: float
) -> tuple[Array, Array, Array, Array]:
    """Gradients of the mean cross-entropy plus ``weight_decay / 2`` times the squared
    weights, by back-propagation: d loss / d logit = (p - y) / n."""
    pre, hidden, logits = _forward(params, x)
    d_logits = (_sigmoid(logits) - rates) / rates.size
    g_w2 = hidden.T @ d_logits + weight_decay * params.w2
    g_b2 = np.array([d_logits.sum()])
    d_pre = np.outer(d_logits, params.w2) * (pre > 0.0)
    g_w1 = x.T @ d_pre + weight_decay * params.w1
    g_b1 = d_pre.sum(axis=0)
    return g_w1, g_b1, g_w2, g_b2


def _fit(
    settings: ProbeSettings,
    params: ProbeParameters,
    train: tuple[Array, Array],
    held_out: tuple[Array, Array],
) -> tuple[ProbeParameters, int, int]:
    """Full-batch Adam with early stopping; returns the best parameters (lowest held-out
    cross-entropy, the initial ones included), their epoch and the epochs run."""
    x, y = train
    vx, vy = held_out
    first = [np.zeros_like(a) for a in params.arrays()]
    second = [np.zeros_like(a) for a in params.arrays()]
    best, best_loss, best_epoch = params.copy(), _bce(_forward(params, vx)[2], vy), 0
    epoch = 0
    for epoch in range(1, settings.max_epochs + 1):
        grads = _gradients(params, x, y, settings.weight_decay)
        correction1 = 1.0 - ADAM_BETA1**epoch
        correction2 = 1.0 - ADAM_BETA2**epoch
        for value, grad, m, v in zip(params.arrays(), grads, first, second, strict=True):
            m *= ADAM_BETA1
            m += (1.0 - ADAM_BETA1) * grad
            v *= ADAM_BETA2
            v += (1.0 - ADAM_BETA2) * grad**2
            value -= (
                settings.learning_rate
                * (m / correction1)
                / (np.sqrt(v / correction2) + ADAM_EPSILON)
            )
        loss = _bce(_forward(params, vx)[2], vy)
        if loss < best_loss:
            best, best_loss, best_epoch = params.copy(), loss, epoch
        elif epoch - best_epoch >= settings.patience:
            break
    return best, best_epoch, epoch


@dataclass(frozen=True, eq=False)
class DifficultyProbe:
    """A trained probe: ``predict`` maps features to predicted pass rates in [0, 1]."""

    metadata: ProbeMetadata
    settings: ProbeSettings
    report: TrainingReport
    feature_mean: Array
    feature_scale: Array
    parameters: ProbeParameters

    def __post_init__(self) -> None:
        dims, hidden = self.parameters.w1.shape
        shapes_fit = (
            self.feature_mean.shape == (dims,)
            and self.feature_scale.shape == (dims,)
            and self.parameters.b1.shape == (hidden,)
            and self.parameters.w2.shape == (hidden,)
            and self.parameters.b2.shape == (1,)
        )
        if not shapes_fit:
            raise ValueError("the probe's parameter shapes do not fit together")
        if dims != self.metadata.feature_dim or hidden != self.settings.hidden_units:
            raise ValueError("the probe's parameters do not match its metadata and settings")
        arrays = (self.feature_mean, self.feature_scale, *self.parameters.arrays())
        if not all(np.all(np.isfinite(a)) for a in arrays) or np.any(self.feature_scale <= 0):
            raise ValueError("the probe's parameters contain non-finite values or zero scales")

    @property
    def feature_dim(self) -> int:
        """The length of the feature vectors the probe takes."""
        return int(self.parameters.w1.shape[0])

    def predict(self, features: ArrayLike) -> Array:
        """Predicted pass rates (lambda in [0, 1]) of the problems whose features are the
        rows of ``features``; ``ValueError`` for another feature length or non-finite
        values."""
        x = _check_features(features)
        if x.shape[1] != self.feature_dim:
            raise ValueError(
                f"the probe takes features of length {self.feature_dim}, got {x.shape[1]} "
                f"(trained on {self.metadata.feature_kind} of {self.metadata.policy})"
            )
        standardised = (x - self.feature_mean) / self.feature_scale
        return _sigmoid(_forward(self.parameters, standardised)[2])

    def to_json(self) -> str:
        """The probe as one JSON document (floats round-trip exactly)."""
        document = {
            "format": PROBE_FORMAT,
            "version": PROBE_VERSION,
            "metadata": {
                **asdict(self.metadata),
                "training_runs": list(self.metadata.training_runs),
                "context": dict(self.metadata.context),
            },
            "settings": asdict(self.settings),
            "report": asdict(self.report),
            "parameters": {
                "feature_mean": self.feature_mean.tolist(),
                "feature_scale": self.feature_scale.tolist(),
                "w1": self.parameters.w1.tolist(),
                "b1": self.parameters.b1.tolist(),
                "w2": self.parameters.w2.tolist(),
                "b2": float(self.parameters.b2[0]),
            },
        }
        return json.dumps(document, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> DifficultyProbe:
        """A probe from :meth:`to_json`'s document; :class:`ProbeFormatError` if it is
        not one (another format or version, missing fields, shapes that do not fit)."""
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ProbeFormatError(f"not a probe file (not JSON: {error})") from error
        if not isinstance(document, dict) or document.get("format") != PROBE_FORMAT:
            raise ProbeFormatError(f"not a probe file (no format {PROBE_FORMAT!r})")
        if document.get("version") != PROBE_VERSION:
            raise ProbeFormatError(
                f"probe file version {document.get('version')!r}; this coderm reads "
                f"version {PROBE_VERSION}"
            )
        try:
            return cls._from_document(document)
        except (KeyError, TypeError, ValueError) as error:
            raise ProbeFormatError(f"malformed probe file: {error!r}") from error

    @classmethod
    def _from_document(cls, document: Mapping[str, Any]) -> DifficultyProbe:
        meta = document["metadata"]
        report = document["report"]
        params = document["parameters"]
        return cls(
            metadata=ProbeMetadata(
                policy=str(meta["policy"]),
                policy_fingerprint=str(meta["policy_fingerprint"]),
                feature_kind=str(meta["feature_kind"]),
                feature_dim=int(meta["feature_dim"]),
                training_runs=tuple(str(r) for r in meta["training_runs"]),
                context={str(k): str(v) for k, v in dict(meta["context"]).items()},
            ),
            settings=ProbeSettings(**document["settings"]),
            report=TrainingReport(
                train=SplitMetrics(**report["train"]),
                validation=SplitMetrics(**report["validation"]),
                best_epoch=int(report["best_epoch"]),
                epochs=int(report["epochs"]),
            ),
            feature_mean=_array(params["feature_mean"], 1),
            feature_scale=_array(params["feature_scale"], 1),
            parameters=ProbeParameters(
                w1=_array(params["w1"], 2),
                b1=_array(params["b1"], 1),
                w2=_array(params["w2"], 1),
                b2=np.array([float(params["b2"])]),
            ),
        )


def _array(value: object, ndim: int) -> Array:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D array, got shape {array.shape}")
    return array


def train_probe(
    features: ArrayLike,
    pass_rates: Sequence[float] | ArrayLike,
    metadata: ProbeMetadata,
    settings: ProbeSettings | None = None,
) -> DifficultyProbe:
    """Train a probe on one feature row and one observed pass rate per problem.

    The problems are split at random (``settings.seed``) into a training and a held-out
    part; the features are standardised with the training part's statistics; the
    network is fitted by full-batch Adam on the training part and the parameters of the
    epoch with the lowest held-out cross-entropy are kept. Deterministic for a seed.

    ``ValueError`` for features that are not a finite 2-D array, pass rates outside
    [0, 1] or not one a row, a feature length other than ``metadata.feature_dim``, or
    fewer than two problems.
    """
    settings = settings or ProbeSettings()
    x = _check_features(features)
    y = _check_rates(pass_rates, x.shape[0])
    if x.shape[1] != metadata.feature_dim:
        raise ValueError(
            f"features have length {x.shape[1]}, the metadata says {metadata.feature_dim}"
        )
    train_size, _ = settings.split_sizes(x.shape[0])
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(x.shape[0])
    train_rows, held_rows = np.sort(order[:train_size]), np.sort(order[train_size:])

    mean = x[train_rows].mean(axis=0)
    scale = x[train_rows].std(axis=0)
    scale = np.where(scale < MIN_SCALE, 1.0, scale)
    standardised = (x - mean) / scale
    train = (standardised[train_rows], y[train_rows])
    held_out = (standardised[held_rows], y[held_rows])

    baseline = float(train[1].mean())
    initial = _initial(settings, x.shape[1], baseline, rng)
    params, best_epoch, epochs = _fit(settings, initial, train, held_out)
    report = TrainingReport(
        train=_metrics(_forward(params, train[0])[2], train[1], baseline),
        validation=_metrics(_forward(params, held_out[0])[2], held_out[1], baseline),
        best_epoch=best_epoch,
        epochs=epochs,
    )
    return DifficultyProbe(metadata, settings, report, mean, scale, params)

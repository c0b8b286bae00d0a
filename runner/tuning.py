"""Post-processing threshold tuning: predict once, post-process many times, keep the best params.

The search is a coordinate ascent over a small grid per parameter (every value of one parameter with the
others fixed, best kept, next parameter; repeated for a few rounds), which finds the same optimum as a full
grid on these well-behaved thresholds at a fraction of its cost. Every tried combination is recorded.

>>> result = tune(predictions, ground_truths, "watershed_bcd", start_params, metric="accuracy@0.5")
>>> result.best_params, result.best_score, result.default_score
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.errors import UserError

if TYPE_CHECKING:
    from runner.metrics import ImageMetrics, Metric

TUNING_METRICS = ("accuracy@0.5", "av_ap")
"""Examples: any ``FIELD@IOU`` of :data:`runner.metrics.MATCHING_FIELDS` goes (pooled over the images), and
``av_ap`` (the pooled accuracy averaged over IoU 0.5:0.1:0.9)."""


def tuning_metric(name: str):
    """The :class:`runner.metrics.Metric` of ``runner tune --metric`` (``FIELD@IOU`` or ``av_ap``)."""
    from runner.metrics import parse_metric

    try:
        return parse_metric(name, allow=("av_ap",))
    except ValueError as exc:
        raise UserError(str(exc)) from None


@dataclass
class Trial:
    """One tried parameter combination and its scores."""

    params: dict[str, Any]
    score: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class TuneResult:
    """Outcome of :func:`tune`."""

    method: str
    metric: str
    best_params: dict[str, Any]
    best_score: float
    default_score: float
    trials: list[Trial]
    n_images: int
    start: dict[str, Any] = field(default_factory=dict)
    """The validated starting params (every field of the params model)."""
    space: dict[str, list] = field(default_factory=dict)
    """The values searched per parameter."""

    @property
    def changed(self) -> dict[str, Any]:
        """Params whose best value differs from the start."""
        return {k: v for k, v in self.best_params.items() if self.start.get(k) != v}


def search_space(method: str, params_model, *, overrides: dict[str, list] | None = None) -> dict[str, list]:
    """Values to try per parameter: the grid declared beside the params (``params_model.tuning_grid``), else
    one over its ``th*``/``threshold`` params, with ``overrides`` replacing or adding parameters. Unknown
    parameter names are refused."""
    from runner.postprocessing import UNIT_GRID

    declared = getattr(params_model, "tuning_grid", None) or {
        name: UNIT_GRID for name in params_model.model_fields if name.startswith("th") or name == "threshold"
    }
    space = {name: list(values) for name, values in declared.items()}
    for key, values in (overrides or {}).items():
        if key not in params_model.model_fields:
            raise UserError(
                f"--grid names unknown parameter {key!r} of {method}; "
                f"known: {', '.join(params_model.model_fields)}"
            )
        space[key] = list(values) if isinstance(values, list | tuple) else [values]
    if not space:
        raise UserError(
            f"post-processor {method!r} has no threshold to tune", hint="give --grid key=v1,v2,..."
        )
    return space


# ------------------------------------------------------------------------------------------ scoring

_WORK: dict[str, Any] = {}


def _score_one(i: int, method: str, params: dict) -> ImageMetrics:
    from runner.metrics import evaluate_image
    from runner.postprocessing import run_postprocessor

    pred = _WORK["predictions"][i]
    labels = run_postprocessor(method, pred, params, resolution=_WORK["resolution"])
    return evaluate_image(_WORK["gts"][i], labels, thresholds=_WORK["thresholds"])


class _Scorer:
    """Scores params on all images, in worker processes that inherit the predictions (fork)."""

    def __init__(self, predictions, gts, method, metric: Metric, resolution, workers):
        _WORK.update(predictions=predictions, gts=gts, thresholds=metric.thresholds, resolution=resolution)
        self.method, self.metric, self.n = method, metric, len(predictions)
        self.pool = None
        if workers > 1 and self.n > 1 and hasattr(os, "fork"):
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))

    def __call__(self, params: dict) -> dict[str, float]:
        from runner.metrics import parse_metric, summarize

        args = [(i, self.method, params) for i in range(self.n)]
        if self.pool is None:
            metrics = [_score_one(*a) for a in args]
        else:
            metrics = list(self.pool.map(_score_one, *zip(*args, strict=True)))
        rows = summarize(metrics)["pooled"]["per_threshold"]
        headline = parse_metric("accuracy@0.5")  # shown beside av_ap
        shown = [headline] if 0.5 in self.metric.thresholds and self.metric != headline else []
        return {m.name: m.from_rows(rows) for m in (*shown, self.metric)}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        _WORK.clear()


def coordinate_search(
    evaluate: Callable[[dict], dict[str, float]],
    start: dict[str, Any],
    space: Mapping[str, Sequence],
    *,
    metric: str,
    rounds: int = 2,
    on_trial: Callable[[Trial], None] | None = None,
) -> list[Trial]:
    """Coordinate ascent from ``start``: sweep each parameter over its values keeping the best; repeat."""
    cache: dict[tuple, Trial] = {}
    trials: list[Trial] = []

    def run(params: dict) -> Trial:
        key = tuple(sorted((k, repr(v)) for k, v in params.items()))
        if key not in cache:
            scores = evaluate(params)
            cache[key] = Trial(dict(params), scores[metric], scores)
            trials.append(cache[key])
            if on_trial:
                on_trial(cache[key])
        return cache[key]

    best = run(dict(start))
    for _ in range(rounds):
        improved = False
        for name, values in space.items():
            for value in values:
                trial = run({**best.params, name: value})
                if trial.score > best.score + 1e-12:
                    best, improved = trial, True
        if not improved:
            break
    return trials


def _validated(processor, params: dict, what: str):
    from pydantic import ValidationError

    try:
        return processor.params_model.model_validate(params)
    except ValidationError as exc:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"invalid {what} for {processor.name}: {msg}") from None


def tune(
    predictions: Sequence[np.ndarray],
    ground_truths: Sequence[np.ndarray],
    method: str,
    start_params: dict[str, Any] | None = None,
    *,
    metric: str = "accuracy@0.5",
    grid: dict[str, list] | None = None,
    rounds: int = 2,
    resolution: tuple[float, ...] | None = None,
    workers: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Search ``method``'s params on predictions ``[(C, (Z,) Y, X)]`` against ground-truth labels.

    ``start_params`` (e.g. the package's current params) is the first trial and the baseline reported as
    ``default_score``. ``grid`` overrides the values tried per parameter.
    """
    from runner.postprocessing import get_postprocessor

    parsed = tuning_metric(metric)
    if len(predictions) != len(ground_truths) or not predictions:
        raise UserError("tuning needs at least one prediction with its ground truth")
    processor = get_postprocessor(method)
    start = _validated(processor, start_params or {}, "start params").model_dump()
    space = search_space(method, processor.params_model, overrides=grid)
    # validate every value before spending time, in the model's own types (1 and 1.0 are one value)
    space = {
        name: list(
            dict.fromkeys(
                _validated(processor, {**start, name: v}, f"{name}={v!r}").model_dump()[name] for v in values
            )
        )
        for name, values in space.items()
    }
    scorer = _Scorer(
        list(predictions),
        list(ground_truths),
        method,
        parsed,
        resolution,
        workers if workers is not None else min(2, os.cpu_count() or 1),
    )
    try:
        trials = coordinate_search(scorer, start, space, metric=metric, rounds=rounds, on_trial=on_trial)
    finally:
        scorer.close()
    best = max(trials, key=lambda t: t.score)
    return TuneResult(
        method=method,
        metric=metric,
        best_params=dict(best.params),
        best_score=best.score,
        default_score=trials[0].score,
        trials=trials,
        n_images=len(predictions),
        start=start,
        space=space,
    )


# ------------------------------------------------------------------------------ packages and run folders


@dataclass
class TuneData:
    """Predictions of a package on tuning images, ready to be post-processed many times."""

    predictions: list[np.ndarray]
    ground_truths: list[np.ndarray]
    names: list[str]
    source: str
    resolution: tuple[float, ...] | None = None


def tuning_split(data: str | os.PathLike) -> Any:
    """The split folder to tune on: ``data`` itself when it holds ``x/``, else its ``val/`` split."""
    from pathlib import Path

    data = Path(data)
    if (data / "x").is_dir():
        return data
    if (data / "val" / "x").is_dir():
        return data / "val"
    raise UserError(
        "no x/ (images) and y/ (labels) folders here, nor a val/ split with them",
        path=data,
        hint="--data takes a split folder such as data/val",
    )


def predict_for_tuning(
    package,
    data: str | os.PathLike,
    *,
    device: str = "auto",
    tta: bool = False,
    max_images: int | None = None,
    method_input: str = "prediction",
    progress: bool = True,
    trust_code: bool = False,
    names: list[str] | None = None,
) -> TuneData:
    """Run ``package`` once on every image of the split ``data`` (the way ``runner predict`` does).

    ``trust_code`` allows weight formats that run the package's Python source (``pytorch_state_dict``), as
    ``runner predict --trust-code`` does; without it only ONNX and allow-listed TorchScript graphs run.
    ``names``: only the images with these names (file stems), e.g. a recipe's ``data.held_out`` list; every
    one must be in the split.
    """
    from tqdm import tqdm

    from runner.inference import Predictor
    from runner.io import find_pairs, read_image, read_labels
    from runner.targets import split_code

    split = tuning_split(data)
    pairs = find_pairs(split)
    if names is not None:
        pairs = select_pairs(pairs, names, split)
    pairs = pairs[:max_images] if max_images else pairs
    cfg = package.runner_config
    out_id = cfg.output_tensor if cfg else None
    n_code = len(split_code(package.targets)) if package.targets and package.targets != "PPP" else None
    preds, gts = [], []
    resolution = tuple(cfg.resolution) if cfg and cfg.resolution else None
    with Predictor(package, device=device, trust_code=trust_code) as predictor:
        for pair in tqdm(pairs, desc="predict", unit="img", disable=not progress):
            image = read_image(pair.image)
            gts.append(read_labels(pair.labels, spatial_shape=image.data.shape[1:]).data)
            if method_input == "image":
                preds.append(image.data)
                continue
            outputs = predictor.predict(image.data, tta=tta, where=pair.image)
            out = outputs[out_id] if out_id in outputs else next(iter(outputs.values()))
            preds.append(out[:n_code] if n_code else out)
    from runner.safety.paths import shareable_name

    return TuneData(preds, gts, [p.name for p in pairs], shareable_name(split), resolution)


def select_pairs(pairs: list, names: list[str], split) -> list:
    """The pairs named in ``names``, in the split's order; fails when one is missing."""
    have = {p.name for p in pairs}
    missing = [n for n in names if n not in have]
    if missing:
        raise UserError(
            f"{len(missing)} of the {len(names)} held-out image(s) are not in this split "
            f"(first: {missing[0]})",
            path=split,
            hint="give --data the training split the held-out list was drawn from",
        )
    wanted = set(names)
    return [p for p in pairs if p.name in wanted]


def format_trials(result: TuneResult, space_keys: list[str], *, limit: int | None = None) -> str:
    """A plain-text table of the tried combinations (searched params and scores), best marked."""
    metrics = list(result.trials[0].scores)
    head = [*space_keys, *metrics, ""]
    rows = []
    best = max(result.trials, key=lambda t: t.score)
    for t in result.trials[:limit] if limit else result.trials:
        rows.append(
            [
                *(str(t.params.get(k)) for k in space_keys),
                *(f"{t.scores[m]:.4f}" for m in metrics),
                "<- best" if t is best else "",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    )

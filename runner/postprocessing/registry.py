"""The post-processor registry: name -> :class:`PostProcessor` (params model, callable, input contract).

Every module of the :mod:`runner.postprocessing` package is imported on the first lookup, so a new method only
has to live in the package and call :func:`register` at import time.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from runner.errors import UserError

PostProcessFn = Callable[..., np.ndarray]
"""``f(prediction: (C, (Z,) Y, X) float32, params: BaseModel, *, resolution=None, debug=None) -> labels``."""

ParamsT = TypeVar("ParamsT", bound=BaseModel)

CheckFn = Callable[[np.ndarray, Any], None]
"""``check(prediction, params) -> None``; ``params`` is an instance of the post-processor's params model."""


UNIT_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""The values ``runner tune`` tries for a probability threshold."""


class Params(BaseModel):
    """Base for post-processor and filter params: unknown keys are rejected, assignments validated, and NaN or
    infinite numbers refused (``th_binary=nan`` would compare false everywhere and land in JSON as NaN).

    ``tuning_grid`` declares, beside the params, the values ``runner tune`` tries per param, in the order
    the coordinate search visits them; when empty, every ``th*``/``threshold`` param gets :data:`UNIT_GRID`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    tuning_grid: ClassVar[dict[str, tuple[Any, ...]]] = {}


@dataclass(frozen=True)
class PostProcessor:
    """One registered instance post-processor.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"watershed_bcd"``.
    description : str
        One line shown by ``runner postprocess --list``.
    params_model : type[BaseModel]
        Pydantic model of the params (``extra="forbid"``, defaults, ranges, one-line field descriptions).
    func : callable
        ``func(prediction, params, *, resolution=None, debug=None) -> labels``; ``prediction`` is a
        ``(C, (Z,) Y, X)`` float32 array, ``params`` an instance of ``params_model``, ``resolution`` the
        ``(Z,) Y, X`` pixel spacing or None, ``debug`` a dict to fill with intermediate maps or None.
        Returns a ``(Z,) Y, X`` uint32 label image, or an ``(N, (Z,) Y, X)`` stack when ``overlapping``.
    code : str or None
        Target code whose channels the method reads, in order (``"BCD"``); None when any input goes.
    n_channels : int or None
        Number of input channels required; None means any (then ``check`` may still refuse).
    input : {"prediction", "image"}
        ``"prediction"`` for model outputs, ``"image"`` for raw images (the classical pipeline).
    overlapping : bool
        True when the method may return an overlapping stack ``(N, (Z,) Y, X)`` instead of a label image.
    check : callable or None
        Extra input check ``check(prediction, params) -> None`` raising :class:`UserError`.
    """

    name: str
    description: str
    params_model: type[BaseModel]
    func: PostProcessFn
    code: str | None = None
    n_channels: int | None = None
    input: Literal["prediction", "image"] = "prediction"
    overlapping: bool = False
    check: CheckFn | None = None

    def make_params(self, params: dict | BaseModel | None = None) -> BaseModel:
        """Validate ``params`` against :attr:`params_model`; a :class:`UserError` names bad keys."""
        return validate_params(self.params_model, params, owner=f"post-processor {self.name!r}")

    def __call__(
        self, prediction: np.ndarray, params: dict | BaseModel | None = None, **kwargs: Any
    ) -> np.ndarray:
        return run_postprocessor(self, prediction, params, **kwargs)


REGISTRY: dict[str, PostProcessor] = {}
_DISCOVERED = False


@overload
def register(name: PostProcessor) -> PostProcessor: ...


@overload
def register(
    name: str,
    *,
    params: type[BaseModel] | None = None,
    description: str | None = None,
    code: str | None = None,
    n_channels: int | None = None,
    input: Literal["prediction", "image"] = "prediction",
    overlapping: bool = False,
    check: CheckFn | None = None,
) -> Callable[[PostProcessFn], PostProcessFn]: ...


def register(
    name: str | PostProcessor,
    *,
    params: type[BaseModel] | None = None,
    description: str | None = None,
    code: str | None = None,
    n_channels: int | None = None,
    input: Literal["prediction", "image"] = "prediction",
    overlapping: bool = False,
    check: CheckFn | None = None,
) -> Callable[[PostProcessFn], PostProcessFn] | PostProcessor:
    """Register a post-processor, as a decorator or with a ready :class:`PostProcessor`.

    ``@register("my_method", params=MyParams, code="BC")`` above ``def f(prediction, params, *,
    resolution=None, debug=None)``; the description defaults to the first line of the function's docstring and
    ``n_channels`` to the number of channels of ``code``. ``register(PostProcessor(...))`` registers a record
    directly. Registering a name twice replaces the earlier entry (so a module can be reloaded).
    """
    if isinstance(name, PostProcessor):
        REGISTRY[name.name] = name
        return name
    if params is None:
        raise TypeError("register() needs params=<pydantic model>")

    def decorate(func: PostProcessFn) -> PostProcessFn:
        doc = description or (func.__doc__ or name).strip().splitlines()[0]
        count = n_channels
        if count is None and code is not None:
            from runner.targets import split_code

            count = len(split_code(code))
        REGISTRY[name] = PostProcessor(
            name=name,
            description=doc,
            params_model=params,
            func=func,
            code=code,
            n_channels=count,
            input=input,
            overlapping=overlapping,
            check=check,
        )
        return func

    return decorate


def discover() -> None:
    """Import every module of the package once, so that their ``register`` calls run; a subpackage names
    its registering submodules in ``REGISTERING_MODULES`` (the rest, such as PatchPerPix's reference
    implementation, stays unimported)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import runner.postprocessing as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            module = importlib.import_module(f"{pkg.__name__}.{mod.name}")
            for sub in getattr(module, "REGISTERING_MODULES", ()):
                importlib.import_module(f"{module.__name__}.{sub}")


def get_postprocessor(name: str) -> PostProcessor:
    """The post-processor registered as ``name``; a :class:`UserError` listing the known names otherwise."""
    discover()
    if name not in REGISTRY:
        raise UserError(
            f"unknown post-processor {name!r}; known: {', '.join(sorted(REGISTRY))}",
            hint="see `runner postprocess --list`",
        )
    return REGISTRY[name]


def list_postprocessors() -> list[PostProcessor]:
    """All registered post-processors, sorted by name."""
    discover()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def validate_params(model: type[ParamsT], params: dict | BaseModel | None, *, owner: str) -> ParamsT:
    """``params`` as a ``model``; unknown keys and out-of-range values become a :class:`UserError`."""
    if isinstance(params, model):
        return params
    if isinstance(params, BaseModel):
        params = params.model_dump()
    try:
        return model.model_validate(dict(params or {}))
    except ValidationError as exc:
        known = ", ".join(model.model_fields) or "none"
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ())) or "params"
            value = err.get("input")
            got = "" if err.get("type") in ("extra_forbidden", "missing") else f" (got {value!r})"
            msg = "unknown param" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}{got}")
        raise UserError(
            f"invalid params for {owner}: " + "; ".join(problems), hint=f"known params: {known}"
        ) from None


def check_prediction(
    pp: PostProcessor, prediction: np.ndarray, resolution: tuple[float, ...] | None
) -> np.ndarray:
    """Check shape, channel count, finiteness and resolution; return the prediction as float32."""
    arr = np.asarray(prediction)
    what = "image" if pp.input == "image" else "prediction"
    if arr.ndim not in (3, 4):
        raise UserError(
            f"{pp.name}: the {what} must have axes c,(z,)y,x (3 or 4 dims), got shape {arr.shape}"
        )
    if pp.n_channels is not None and arr.shape[0] != pp.n_channels:
        need = f"the {pp.n_channels} channels {pp.code}" if pp.code else f"{pp.n_channels} channel(s)"
        raise UserError(
            f"{pp.name} needs {need}, but the {what} has {arr.shape[0]} channel(s) (shape {arr.shape})",
            hint="pick the method matching the model's target code (runner postprocess --list)",
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise UserError(
            f"the {what} contains {bad} NaN/inf value(s)",
            hint="check the model output or the input image; NaNs cannot be post-processed",
        )
    if resolution is not None:
        resolution = tuple(float(r) for r in resolution)
        if len(resolution) != arr.ndim - 1 or any(r <= 0 for r in resolution):
            raise UserError(
                f"resolution {resolution} must be {arr.ndim - 1} positive values (z,)y,x for a "
                f"{what} of shape {arr.shape}"
            )
    return arr


def run_postprocessor(
    name: str | PostProcessor,
    prediction: np.ndarray,
    params: dict | BaseModel | None = None,
    *,
    resolution: tuple[float, ...] | None = None,
    debug: dict | None = None,
) -> np.ndarray:
    """Validate ``params`` and ``prediction`` and run the post-processor ``name``.

    Parameters
    ----------
    name : str or PostProcessor
        Registered name (see :func:`list_postprocessors`).
    prediction : (C, (Z,) Y, X) ndarray
        Model output (or raw image for ``input == "image"`` methods).
    params : dict or BaseModel, optional
        Method params; missing keys take their defaults.
    resolution : tuple of float, optional
        ``(Z,) Y, X`` pixel spacing; distances and footprints honour it.
    debug : dict, optional
        Filled with intermediate maps (``seeds``, ``foreground``, ``surface``) when given.

    Returns
    -------
    (Z,) Y, X ndarray of uint32, or (N, (Z,) Y, X) ndarray of uint32 for overlapping methods.
    """
    pp = name if isinstance(name, PostProcessor) else get_postprocessor(name)
    model = pp.make_params(params)
    arr = check_prediction(pp, prediction, resolution)
    if pp.check is not None:
        pp.check(arr, model)
    res = None if resolution is None else tuple(float(r) for r in resolution)
    out = pp.func(arr, model, resolution=res, debug=debug)
    return np.asarray(out).astype(np.uint32, copy=False)

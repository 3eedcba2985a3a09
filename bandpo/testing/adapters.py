"""Adapters: call any Band solver the same way, whatever its signature and array type.

A solver under test maps old log-probabilities (or probabilities) to a band (lower, upper).
Training frameworks write that in many shapes; :class:`SolverAdapter` normalises:

* **the call.**  By default the signature is inspected: the input goes to the first parameter
  (or to one named like ``old_log_prob``/``log_prob``/``logp``, or ``p``/``prob`` for
  probability input), δ to a parameter named ``delta`` (or ``radius``, ``trust_region``,
  ``kl_delta``) or else to the second positional parameter, ``divergence=`` and its parameters
  (``alpha=``) are passed when the solver takes them, and ``fn_kwargs`` are added.  A solver
  with no δ parameter is assumed to have δ fixed inside it.  ``call=`` replaces all of this:
  ``call(fn, x, delta)`` must return the band.
* **the arrays.**  ``array="torch"`` passes torch tensors, ``"numpy"`` numpy arrays (CPU), and
  ``"auto"`` tries torch first and falls back to numpy if the solver raises on a tensor.
* **the result.**  A (lower, upper) tuple or NamedTuple, a mapping with keys such as
  ``lower``/``upper`` (``low``/``high``, ``lo``/``hi``, ``min``/``max``), an object with
  ``.lower``/``.upper``, or one array stacked as ``(2, *shape)`` or ``(*shape, 2)``; each end
  a tensor, an array or a scalar (broadcast).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bandpo.divergences import Divergence

__all__ = ["SolverAdapter", "SolverCallError", "SolverOutput", "run_cases", "solver_name"]

LOG_PROB_NAMES = (
    "old_log_prob",
    "old_log_probs",
    "old_logprob",
    "old_logprobs",
    "log_prob",
    "log_probs",
    "logprob",
    "logprobs",
    "logp",
    "log_p",
    "old_logp",
)
PROB_NAMES = ("p", "prob", "probs", "old_prob", "old_probs", "pi_old", "old_p")
DELTA_NAMES = ("delta", "radius", "trust_region", "kl_delta", "band_delta")
_PAIR_KEYS = (
    ("lower", "upper"),
    ("low", "high"),
    ("lo", "hi"),
    ("min", "max"),
    ("r_min", "r_max"),
    ("lower_bound", "upper_bound"),
    ("left", "right"),
)


class SolverCallError(RuntimeError):
    """The solver raised, or returned something that is not a band of the input's shape."""


@dataclass
class SolverOutput:
    """One call's result, converted for comparison.

    Attributes:
        lower, upper: float64 numpy arrays of the returned ends (exact conversions).
        dtype: The dtype the solver returned (``"float32"``, ...), or ``"mixed"``.
        device: The device of the returned tensors (``"cpu"``, ``"numpy"``, ...).
        requires_grad: Whether a returned tensor requires grad.
    """

    lower: np.ndarray
    upper: np.ndarray
    dtype: str
    device: str
    requires_grad: bool


def solver_name(fn: Any) -> str:
    """A readable name of a callable: ``module:qualname`` where known."""
    base = fn
    while hasattr(base, "func") and not hasattr(base, "__qualname__"):  # functools.partial
        base = base.func
    mod = getattr(base, "__module__", None)
    qual = getattr(base, "__qualname__", None) or type(base).__name__
    name = f"{mod}:{qual}" if mod else qual
    if base is not fn:
        name = f"partial({name})"
    return name


@dataclass
class SolverAdapter:
    """Calls ``fn`` on a 1-D input of one dtype and δ, and returns a :class:`SolverOutput`.

    Args:
        fn: The solver under test.
        input: ``"log_prob"`` or ``"prob"``: what the solver's first argument holds.
        array: ``"torch"``, ``"numpy"`` or ``"auto"`` (torch, numpy if torch raises).
        call: Optional ``call(fn, x, delta) -> band`` replacing signature inspection.
        divergence: The divergence checked (passed as its name where ``fn`` takes one).
        params: Divergence parameters (passed where ``fn`` takes them).
        fn_kwargs: Extra keyword arguments for every call.
        device: Torch device of the inputs.
    """

    fn: Callable[..., Any]
    input: str = "log_prob"
    array: str = "auto"
    call: Callable[..., Any] | None = None
    divergence: Divergence | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    fn_kwargs: Mapping[str, Any] = field(default_factory=dict)
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"fn must be callable, got {type(self.fn).__name__}")
        if self.input not in ("log_prob", "prob"):
            raise ValueError(f"input must be 'log_prob' or 'prob', got {self.input!r}")
        if self.array not in ("torch", "numpy", "auto"):
            raise ValueError(f"array must be 'torch', 'numpy' or 'auto', got {self.array!r}")
        if self.call is not None and not callable(self.call):
            raise TypeError("call must be a callable call(fn, x, delta) -> band")
        self.device = torch.device(self.device)
        if self.array == "numpy" and self.device.type != "cpu":
            raise ValueError("array='numpy' needs device='cpu'")
        self._mode = self.array if self.array != "auto" else None
        self._plan = None if self.call is not None else self._inspect()

    # ----------------------------------------------------------------------- signature plan
    def _inspect(self) -> dict[str, Any]:
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError):  # builtins, some C extensions: assume fn(x, delta)
            return {"x": 0, "delta": 1, "divergence": False, "params": False, "var_kw": False}
        params = list(sig.parameters.values())
        positional = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in self.fn_kwargs
        ]
        names = {p.name for p in params}
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
        has_var_pos = any(p.kind == p.VAR_POSITIONAL for p in params)
        plan: dict[str, Any] = {"var_kw": var_kw}

        wanted = LOG_PROB_NAMES if self.input == "log_prob" else PROB_NAMES
        other = PROB_NAMES if self.input == "log_prob" else LOG_PROB_NAMES
        x_name = next((n for n in wanted if n in names), None)
        if x_name is not None:
            plan["x"] = x_name
        elif positional:
            if positional[0].name in other:
                raise ValueError(
                    f"{solver_name(self.fn)} takes {positional[0].name!r} first, which reads as "
                    f"{'a probability' if self.input == 'log_prob' else 'a log-probability'}; "
                    f"pass input={'prob' if self.input == 'log_prob' else 'log_prob'!r} "
                    "(or call= to map the arguments yourself)"
                )
            plan["x"] = 0
        elif has_var_pos:
            plan["x"] = 0
        else:
            raise TypeError(
                f"cannot tell where {solver_name(self.fn)} takes its input; pass call=lambda fn, "
                "x, delta: fn(...)"
            )

        d_name = next((n for n in DELTA_NAMES if n in names), None)
        if d_name is not None:
            plan["delta"] = d_name
        elif plan["x"] == 0 and (
            (len(positional) >= 2 and positional[1].default is inspect.Parameter.empty)
            or has_var_pos
        ):
            plan["delta"] = 1
        else:
            plan["delta"] = None
        plan["divergence"] = "divergence" in names
        plan["params"] = (
            all(k in names for k in self.params) or (var_kw and plan["divergence"])
        ) and bool(self.params)
        return plan

    @property
    def takes_delta(self) -> bool:
        """Whether δ reaches the solver (``False``: δ assumed fixed inside it)."""
        return self._plan is None or self._plan["delta"] is not None

    def describe(self) -> str:
        """One line saying how the solver is called (for the report)."""
        mode = self._mode or "auto"
        what = "log p" if self.input == "log_prob" else "p"
        if self._plan is None:
            return f"call= hook, {mode} arrays of {what}"
        plan = self._plan
        args = [f"{what}" if plan["x"] == 0 else f"{plan['x']}={what}"]
        if plan["delta"] == 1:
            args.append("δ")
        elif plan["delta"]:
            args.append(f"{plan['delta']}=δ")
        if plan["divergence"]:
            args.append("divergence=…")
        if plan["params"]:
            args += [f"{k}=…" for k in self.params]
        args += [f"{k}=…" for k in self.fn_kwargs]
        return f"fn({', '.join(args)}) on {mode} arrays"

    # ----------------------------------------------------------------------------- calling
    def _invoke(self, x: Any, delta: float) -> Any:
        if self.call is not None:
            return self.call(self.fn, x, delta)
        plan = self._plan
        args: list[Any] = []
        kwargs: dict[str, Any] = dict(self.fn_kwargs)
        if plan["x"] == 0:
            args.append(x)
        else:
            kwargs[plan["x"]] = x
        if plan["delta"] == 1:
            args.append(delta)
        elif plan["delta"]:
            kwargs[plan["delta"]] = delta
        if plan["divergence"] and self.divergence is not None:
            kwargs["divergence"] = self.divergence.name
        if plan["params"]:
            kwargs.update(self.params)
        return self.fn(*args, **kwargs)

    def __call__(self, x: torch.Tensor, delta: float) -> SolverOutput:
        """Call the solver on ``x`` (a 1-D tensor of the dtype under test) at δ.

        Raises:
            SolverCallError: the solver raised, or its result is not a band of ``x``'s shape.
        """
        x = x.to(self.device)
        if self._mode is None:  # auto: torch first, numpy if the solver rejects tensors
            try:
                out = self._invoke(x, delta)
                self._mode = "torch"
            except (TypeError, AttributeError, RuntimeError) as err_torch:
                try:
                    out = self._invoke(x.cpu().numpy(), delta)
                except Exception:
                    raise SolverCallError(
                        f"{solver_name(self.fn)} raised {type(err_torch).__name__}: {err_torch}"
                    ) from err_torch
                self._mode = "numpy"
            except Exception as err:
                raise SolverCallError(
                    f"{solver_name(self.fn)} raised {type(err).__name__}: {err}"
                ) from err
        else:
            arg = x.cpu().numpy() if self._mode == "numpy" else x
            try:
                out = self._invoke(arg, delta)
            except Exception as err:
                raise SolverCallError(
                    f"{solver_name(self.fn)} raised {type(err).__name__}: {err}"
                ) from err
        return _normalise(out, tuple(x.shape), solver_name(self.fn))


def _split(out: Any, shape: tuple[int, ...], name: str) -> tuple[Any, Any]:
    if isinstance(out, Mapping):
        for lo_key, hi_key in _PAIR_KEYS:
            if lo_key in out and hi_key in out:
                return out[lo_key], out[hi_key]
        raise SolverCallError(
            f"{name} returned a mapping with keys {sorted(map(str, out))}; expected one of "
            + ", ".join(f"{a}/{b}" for a, b in _PAIR_KEYS)
        )
    if hasattr(out, "lower") and hasattr(out, "upper"):
        return out.lower, out.upper
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise SolverCallError(f"{name} returned a sequence of {len(out)} items, expected 2")
        return out[0], out[1]
    if isinstance(out, (torch.Tensor, np.ndarray)):
        s = tuple(out.shape)
        if s == (2, *shape):
            return out[0], out[1]
        if s == (*shape, 2):
            return out[..., 0], out[..., 1]
        raise SolverCallError(
            f"{name} returned one array of shape {s}; expected (2, *{shape}) or (*{shape}, 2)"
        )
    raise SolverCallError(
        f"{name} returned {type(out).__name__}; expected a (lower, upper) pair of arrays"
    )


def _normalise(out: Any, shape: tuple[int, ...], name: str) -> SolverOutput:
    lo, up = _split(out, shape, name)
    dtypes, devices, grad = set(), set(), False
    arrays = []
    for end, v in (("lower", lo), ("upper", up)):
        if isinstance(v, torch.Tensor):
            dtypes.add(str(v.dtype).replace("torch.", ""))
            devices.add(str(v.device))
            grad = grad or v.requires_grad
            if not v.is_floating_point():
                raise SolverCallError(f"{name} returned {end} of non-float dtype {v.dtype}")
            if v.dtype == torch.bfloat16:
                v = v.float()
            a = v.detach().cpu().to(torch.float64).numpy()
        else:
            try:
                a = np.asarray(v)
            except Exception as err:
                raise SolverCallError(f"{name} returned {end} of type {type(v).__name__}") from err
            if a.dtype.kind != "f":
                raise SolverCallError(f"{name} returned {end} of non-float dtype {a.dtype}")
            dtypes.add(str(a.dtype))
            devices.add("numpy")
            a = a.astype(np.float64)
        if a.size == 1 and a.shape != shape:
            a = np.broadcast_to(a.reshape(()), shape)
        if a.shape != shape:
            raise SolverCallError(
                f"{name} returned {end} of shape {tuple(a.shape)} for an input of shape {shape}"
            )
        arrays.append(np.array(a, dtype=np.float64))
    return SolverOutput(
        lower=arrays[0],
        upper=arrays[1],
        dtype=dtypes.pop() if len(dtypes) == 1 else "mixed",
        device=devices.pop() if len(devices) == 1 else "mixed",
        requires_grad=grad,
    )


def run_cases(
    adapter: SolverAdapter, cases: Any, device: torch.device
) -> tuple[np.ndarray, np.ndarray, list[SolverOutput]]:
    """Call the solver once per δ on all inputs of that δ; returns (lower, upper, outputs)."""
    n = len(cases)
    lo = np.full(n, np.nan)
    up = np.full(n, np.nan)
    outs = []
    for d, idx in cases.groups():
        x = torch.as_tensor(cases.x[idx], dtype=torch.float64).to(cases.dtype).to(device)
        out = adapter(x, d)
        lo[idx], up[idx] = out.lower, out.upper
        outs.append(out)
    return lo, up, outs

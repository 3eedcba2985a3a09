"""Drop-in adapters of :func:`bandpo.band_policy_loss` for RL training frameworks.

Each adapter lives in its own module and imports its framework on import; a missing framework
raises an :class:`ImportError` that names the extra to install:

* :mod:`bandpo.integrations.verl` – registers the loss as ``actor.policy_loss.loss_mode=bandpo``
  in verl's policy-loss registry (``pip install 'bandpo[verl]'``).
* :mod:`bandpo.integrations.trl` – :class:`~bandpo.integrations.trl.BandGRPOTrainer`, a
  ``trl.GRPOTrainer`` whose policy loss is the Band-clipped one (``pip install 'bandpo[trl]'``).

Importing this package imports neither framework.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that names the bandpo extra providing it.

    Args:
        module: Dotted module name, e.g. ``"trl"``.
        extra: The bandpo optional-dependency group, e.g. ``"trl"``.
        what: What the caller was about to do (for the message).

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the '{module.split('.')[0]}' package, which is not installed: "
            f"install it with `pip install 'bandpo[{extra}]'` ({err})"
        ) from err

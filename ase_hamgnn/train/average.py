"""Exponential moving average of a network's weights during training (``ema_decay``)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """Exponential moving average of a module's parameters (buffers are not averaged).

    ``update()`` after each optimizer step; ``swapped()`` is a context in which the module
    holds the averaged weights (for validation and checkpoints), restored on exit.  The
    decay warms up as ``min(decay, (1 + t) / (10 + t))`` so early averages are not dominated
    by the initial weights.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 1)
    >>> avg = WeightAverage(net, 0.9)
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(1.0)
    >>> avg.update()
    >>> with avg.swapped():
    ...     bool((net.weight != 0).all())
    True
    """

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.module, self.decay, self.steps = module, float(decay), 0
        self.average = {name: p.detach().clone() for name, p in module.named_parameters()}

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        for name, p in self.module.named_parameters():
            self.average[name].lerp_(p.detach(), 1.0 - d)
        self.steps += 1

    def swapped(self):
        @contextmanager
        def ctx():
            params = dict(self.module.named_parameters())
            raw = {name: p.detach().clone() for name, p in params.items()}
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(self.average[name])
            try:
                yield self.module
            finally:
                with torch.no_grad():
                    for name, p in params.items():
                        p.copy_(raw[name])
        return ctx()

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps,
                "average": {k: v.detach().cpu().clone() for k, v in self.average.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        for name, value in state["average"].items():
            self.average[name] = value.to(self.average[name])

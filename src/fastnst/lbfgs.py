"""L-BFGS for one tensor, without line search: the algorithm of `torch.optim.LBFGS(lr=...,
line_search_fn=None)`, one loss evaluation per iteration.

Why not torch.optim: its Optimizer base imports torch._dynamo on first use, which costs a
Gatys run ~2.5 s of start-up and ~150 MB of resident memory on CPU, for nothing here. This is
also simpler to drive: `step(closure)` is exactly one evaluation and one move, so an iteration
budget is met exactly, and a non-descent direction restarts from steepest descent instead of
ending the run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class LBFGS:
    """Minimize `closure()` (which must leave d loss / d param in `param.grad`) over `param`.

    lr: step length along the quasi-Newton direction (1.0 is L-BFGS's natural step).
    history_size: number of (step, gradient change) pairs kept for the inverse-Hessian estimate.
    """

    def __init__(self, param: torch.Tensor, lr: float = 1.0, history_size: int = 100):
        self.param, self.lr, self.history_size = param, float(lr), int(history_size)
        self._steps: list[torch.Tensor] = []  # s_k = x_{k+1} - x_k
        self._grad_changes: list[torch.Tensor] = []  # y_k = g_{k+1} - g_k
        self._rhos: list[float] = []  # 1 / (y_k . s_k)
        self._h_diag = 1.0
        self._direction = self._step_size = self._prev_grad = None

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Evaluate the loss at the current point, then move `param`; returns the loss."""
        with torch.enable_grad():
            loss = closure()
        grad = self.param.grad.reshape(-1)
        if self._prev_grad is None:
            direction, step_size = self._restart(grad)
        else:
            self._remember(grad - self._prev_grad, self._direction * self._step_size)
            direction, step_size = self._two_loop(grad), self.lr
            if float(grad.dot(direction)) > 0:  # not a descent direction: forget the curvature
                direction, step_size = self._restart(grad)
        self._prev_grad = grad.clone()
        self._direction, self._step_size = direction, step_size
        self.param.add_(direction.view_as(self.param), alpha=step_size)
        return loss

    def _restart(self, grad: torch.Tensor) -> tuple[torch.Tensor, float]:
        self._steps.clear(), self._grad_changes.clear(), self._rhos.clear()
        self._h_diag = 1.0
        # the first step is scaled so that it moves at most lr in L1 norm (as torch.optim.LBFGS)
        return grad.neg(), min(1.0, 1.0 / max(float(grad.abs().sum()), 1e-30)) * self.lr

    def _remember(self, y: torch.Tensor, s: torch.Tensor) -> None:
        ys = float(y.dot(s))
        if ys <= 1e-10:  # curvature condition fails: keep the old pairs
            return
        if len(self._steps) == self.history_size:
            self._steps.pop(0), self._grad_changes.pop(0), self._rhos.pop(0)
        self._steps.append(s)
        self._grad_changes.append(y)
        self._rhos.append(1.0 / ys)
        self._h_diag = ys / float(y.dot(y))

    def _two_loop(self, grad: torch.Tensor) -> torch.Tensor:
        """-H grad, with H the L-BFGS inverse-Hessian estimate (Nocedal & Wright, alg. 7.4)."""
        q = grad.neg()
        alphas = []
        for s, y, rho in zip(
            reversed(self._steps), reversed(self._grad_changes), reversed(self._rhos)
        ):
            alpha = float(s.dot(q)) * rho
            q.add_(y, alpha=-alpha)
            alphas.append(alpha)
        r = q.mul_(self._h_diag)
        for s, y, rho, alpha in zip(self._steps, self._grad_changes, self._rhos, reversed(alphas)):
            beta = float(y.dot(r)) * rho
            r.add_(s, alpha=alpha - beta)
        return r

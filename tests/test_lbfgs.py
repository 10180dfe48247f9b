"""fastnst's L-BFGS follows torch.optim.LBFGS (no line search) step for step, one evaluation per
step, and minimizes."""

import torch

from fastnst.lbfgs import LBFGS


def _problem():
    torch.manual_seed(0)
    a = torch.randn(40, 30, dtype=torch.float64)
    b = torch.randn(40, dtype=torch.float64)

    def f(x):  # smooth, non-quadratic: least squares plus a quartic term
        return (a @ x - b).square().sum() + 0.1 * x.pow(4).sum()

    return f


def test_matches_torch_lbfgs_iterates():
    f = _problem()
    x_ours = torch.zeros(30, dtype=torch.float64, requires_grad=True)
    x_torch = x_ours.detach().clone().requires_grad_(True)
    ours = LBFGS(x_ours, lr=1.0, history_size=5)
    reference = torch.optim.LBFGS(
        [x_torch],
        lr=1.0,
        max_iter=25,
        max_eval=1000,
        history_size=5,
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    evaluations = {"ours": 0, "torch": 0}

    def closure_ours():
        evaluations["ours"] += 1
        x_ours.grad = None
        loss = f(x_ours)
        loss.backward()
        return loss

    def closure_torch():
        evaluations["torch"] += 1
        reference.zero_grad()
        loss = f(x_torch)
        loss.backward()
        return loss

    for _ in range(25):
        ours.step(closure_ours)
    reference.step(closure_torch)
    assert evaluations == {"ours": 25, "torch": 25}
    torch.testing.assert_close(x_ours.detach(), x_torch.detach(), rtol=1e-8, atol=1e-10)


def test_minimizes_and_restarts_on_a_non_descent_direction():
    f = _problem()
    x = torch.zeros(30, dtype=torch.float64, requires_grad=True)
    opt = LBFGS(x, lr=1.0, history_size=10)
    losses, grad_norms = [], []

    def closure():
        x.grad = None
        loss = f(x)
        loss.backward()
        losses.append(float(loss))
        grad_norms.append(float(x.grad.norm()))
        return loss

    for _ in range(60):
        opt.step(closure)
    assert losses[-1] < losses[0] and grad_norms[-1] < 1e-4 * grad_norms[0]  # at the minimum
    # corrupt the memory so that the next direction points uphill: the optimizer must restart
    opt._grad_changes = [-y for y in opt._grad_changes]
    opt._rhos = [-r for r in opt._rhos]
    opt._h_diag = -abs(opt._h_diag)
    opt.step(closure)
    assert opt._steps == [] and opt._h_diag == 1.0
    assert float(x.grad.reshape(-1).dot(opt._direction)) < 0

"""Test problems for derivative benchmarks: f, analytic gradient, Hessian and HVP, one record each.

    import problems
    problems.names()                     # sorted names
    p = problems.get("least_squares")    # unknown name -> ValueError naming the valid ones
    inst = p.instance(n, seed=0)
    p.f(x, inst.data); p.grad(x, inst.data); p.hess(x, inst.data); p.hvp(x, v, inst.data)
    p.derivatives                        # the kinds it defines: ("f", "grad", "hess", "hvp"),
                                         # ("f", "jac") if vector-valued, ("f", "dk") for tanh_dk
"""
from ._spec import Instance, Problem
from .exponential import binary_softmax, inv_quad, logistic_single, logsumexp, neg_exp_sq, power_self
from .forms import frob_sym, linear, log_quad, rayleigh
from .least_squares import least_squares
from .logistic import logistic
from .matrix_functions import MATRIX_PROBLEMS
from .networks import backprop, softmax_object
from .norms import cube_norm, norm2, norm_ax, norm_outer
from .quadratic import quadratic
from .scalar import det_shift, tanh_dk_problem
from .series import taylor_cos
from .vector_valued import matvec, matvec_a

_REGISTRY = {p.name: p for p in (
    least_squares, quadratic, logistic,
    linear, log_quad, rayleigh, frob_sym,
    norm2, norm_ax, cube_norm, norm_outer,
    neg_exp_sq, inv_quad, logsumexp, logistic_single, power_self, binary_softmax,
    *MATRIX_PROBLEMS,
    backprop, softmax_object, taylor_cos,
    matvec, matvec_a, det_shift, tanh_dk_problem,
)}


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Problem:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown problem `{name}`; expected one of: {', '.join(names())}.") from None


__all__ = ["Instance", "Problem", "get", "names"]

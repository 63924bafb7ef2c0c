"""Test problems for derivative benchmarks: f, analytic gradient, Hessian and HVP, one record each.

    import problems
    problems.names()                     # sorted names
    p = problems.get("least_squares")    # unknown name -> ValueError naming the valid ones
    inst = p.instance(n, seed=0)
    p.f(x, inst.data); p.grad(x, inst.data); p.hess(x, inst.data); p.hvp(x, v, inst.data)
"""
from ._spec import Instance, Problem
from .least_squares import least_squares
from .logistic import logistic
from .quadratic import quadratic

_REGISTRY = {p.name: p for p in (least_squares, quadratic, logistic)}


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Problem:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown problem `{name}`; expected one of: {', '.join(names())}.") from None


__all__ = ["Instance", "Problem", "get", "names"]

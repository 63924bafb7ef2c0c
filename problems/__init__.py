"""Test problems for derivative benchmarks: f, analytic gradient, Hessian and HVP, one record each.

    import problems
    problems.names()                     # sorted names
    p = problems.get("least_squares")    # unknown name -> ValueError naming the valid ones
    inst = p.instance(n, seed=0)
    p.f(x, inst.data); p.grad(x, inst.data); p.hess(x, inst.data); p.hvp(x, v, inst.data)
    p.derivatives                        # the kinds it defines: ("f", "grad", "hess", "hvp"),
                                         # ("f", "jac") if vector-valued, ("f", "dk") for tanh_dk
"""
from ._spec import DERIVATIVE_KINDS, KINDS, Cost, Instance, Kind, Problem, Sparsity
from ._xp import array_namespace  # array-api-compat's lookup, and the namespaces backends register (TensorFlow's)
from .exponential import binary_softmax, inv_quad, logistic_single, logsumexp, neg_exp_sq, power_self
from .forms import frob_sym, linear, log_quad, rayleigh
from .gmm import gmm
from .kmeans import kmeans
from .least_squares import least_squares, least_squares_ill
from .llsq import llsq
from .logistic import logistic
from .lse import lse
from .matrix_functions import MATRIX_PROBLEMS
from .networks import backprop, softmax_object
from .norms import cube_norm, norm2, norm_ax, norm_outer
from .quadratic import quadratic
from .scalar import det_shift, tanh_dk_problem
from .series import taylor_cos
from .sparse import SPARSE_PROBLEMS
from .vector_valued import matvec, matvec_a

_BUILT_IN = (
    least_squares, quadratic, logistic, least_squares_ill,
    linear, log_quad, rayleigh, frob_sym,
    norm2, norm_ax, cube_norm, norm_outer,
    neg_exp_sq, inv_quad, logsumexp, logistic_single, power_self, binary_softmax,
    *MATRIX_PROBLEMS,
    backprop, softmax_object, taylor_cos,
    matvec, matvec_a, det_shift, tanh_dk_problem,
    llsq, lse, gmm, kmeans,  # the field's standard workloads (GradBench, ADBench, cmpad)
    *SPARSE_PROBLEMS,  # sparse Hessians: chained, a 2-D stencil, separable
)
_REGISTRY: dict[str, Problem] = {p.name: p for p in _BUILT_IN}
# how another process gets each problem: "" built-in; a spec (`load`); or the record itself,
# pickled by value (`define`)
_SOURCES: dict[str, str | bytes] = {name: "" for name in _REGISTRY}
ENTRY_POINTS = "nablabench.problems"
_loaded = False


def register(problem: Problem, source: str | bytes) -> None:
    """Add a problem; `source` loads it again in another process (see `load`): a spec, or the record
    pickled by value (`define`). A problem defined in this session may be defined again (a notebook
    cell run once more); a name from a file, a module or the library may not be taken."""
    if not isinstance(problem, Problem):
        raise TypeError(f"Expected a problems.Problem record; got {type(problem).__name__}.")
    known = _REGISTRY.get(problem.name)
    redefined = isinstance(source, bytes) and isinstance(_SOURCES.get(problem.name), bytes)
    if known is not None and known is not problem and _SOURCES[problem.name] != source and not redefined:
        raise ValueError(f"Problem `{problem.name}` from {_origin(source)} is already defined "
                         f"({origin(problem.name)}); rename it.")
    _REGISTRY[problem.name], _SOURCES[problem.name] = problem, source


def define(problem: Problem) -> str:
    """Register a problem made in this process (a notebook cell, a script, a `python -c` string) and
    return its name. It reaches the worker processes by value: the record pickled with cloudpickle,
    its functions and what they close over, so that no worker imports the notebook or script that
    made it. A problem already registered from a file, a module or the library keeps that source."""
    import cloudpickle

    if not isinstance(problem, Problem):
        raise TypeError(f"Expected a problems.Problem record; got {type(problem).__name__}.")
    if _REGISTRY.get(problem.name) is problem:
        return problem.name
    register(problem, cloudpickle.dumps(problem))
    return problem.name


def is_spec(text: str) -> bool:
    """Whether a --problems item names problems outside the registry: module:NAME, FILE.py[:NAME]."""
    return ":" in text or text.endswith(".py")


def load(spec: str | bytes) -> list[str]:
    """Register the problems a spec names and return their names.

    `some.module:NAME` and `path/to/file.py:NAME`: the Problem record NAME in that module;
    `path/to/file.py`: every Problem record in it; bytes: a record pickled by `define`. Workers
    load a problem's source (`source`) before its first cell.
    """
    if isinstance(spec, bytes):
        import pickle

        problem = pickle.loads(spec)
        register(problem, spec)
        return [problem.name]
    import importlib
    import importlib.util
    import sys
    import zlib
    from pathlib import Path

    target, _, attribute = spec.partition(":") if not spec.endswith(".py") else (spec, "", "")
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise ValueError(f"Problem file `{target}` does not exist.")
        module_name = f"nablabench_user_{path.stem}_{zlib.crc32(str(path).encode()):08x}"
        module = sys.modules.get(module_name)
        if module is None:
            loader = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module  # before exec: dataclasses and pickling look it up
            try:
                loader.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise ValueError(f"Problem file `{target}` failed to import: {type(exc).__name__}: {exc}") from None
        spec = f"{path}:{attribute}" if attribute else str(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(f"Problem module `{target}` cannot be imported: {exc}") from None
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, Problem):
            raise ValueError(f"`{spec}`: the module has no Problem record called `{attribute}`.")
        found_all = [found]
    else:
        found_all = [v for v in vars(module).values() if isinstance(v, Problem)]
        if not found_all:
            raise ValueError(f"`{spec}` defines no Problem record.")
    for problem in found_all:
        register(problem, f"{spec.rsplit(':', 1)[0]}:{_attribute_of(module, problem)}")
    return [p.name for p in found_all]


def _attribute_of(module, problem: Problem) -> str:
    return next(k for k, v in vars(module).items() if v is problem)


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINTS):
        found = point.load()
        for problem in found if isinstance(found, (list, tuple)) else [found]:
            register(problem, f"{point.module}:{_attribute_of(__import__('sys').modules[point.module], problem)}")


def names() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def built_in() -> list[str]:
    return sorted(p.name for p in _BUILT_IN)


def get(name: str) -> Problem:
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown problem `{name}`; expected one of: {', '.join(names())}, "
                         "or a spec: some.module:NAME, path/to/file.py:NAME, path/to/file.py.") from None


def source(name: str) -> str | bytes:
    """What loads `name` in another process (`load`): a spec, the pickled record, "" if built-in."""
    get(name)
    return _SOURCES[name]


def origin(name: str) -> str:
    """Where `name` comes from, in words: built-in, its spec, or defined in this session."""
    get(name)
    return _origin(_SOURCES[name])


def _origin(source: str | bytes) -> str:
    return "defined in this session" if isinstance(source, bytes) else f"`{source}`" if source else "built-in"


__all__ = ["DERIVATIVE_KINDS", "KINDS", "Cost", "Instance", "Kind", "Problem", "Sparsity", "array_namespace",
           "built_in", "define", "get", "is_spec", "load", "names", "origin", "register", "source"]

"""TensorFlow 2: eager `tf.GradientTape`, and the same functions under `tf.function(jit_compile=True)` (XLA).

Each derivative comes in two variants, eager (the tape run op by op, as TF2 runs by default) and
`-xla` (one XLA program). Autodiff: the gradient by a tape (`tape`, `tape-xla`); the HVP forward
over reverse (`tf.autodiff.ForwardAccumulator` over a tape: `fwd-rev`) and reverse over reverse
(nested tapes: `rev-rev`); the Hessian as `tape.jacobian` of the tape's gradient (`jacobian`); the
Jacobian of a vector-valued f by `tape.jacobian` (`batch_jacobian` does not apply: no problem's x
and f share a batch axis). The analytic formulas run on TensorFlow tensors through
`tf.experimental.numpy` (TensorFlow implements no array-API namespace): a thin namespace below
gives it the few array-API names it lacks (concat, matrix_transpose, linalg, astype), drops the
`device=` argument (TensorFlow places ops itself) and replaces logaddexp, whose gradient tnp gets
wrong at ties (see `namespace`); it is registered with the formulas' namespace
lookup (problems._xp.register_namespace) in `setup`. A formula that still needs something the
namespace lacks is a `skipped` row quoting what. The solve: one step per iteration, eager or XLA,
and the whole descent in one XLA-compiled `tf.while_loop` (`while-loop`).

Tensors keep the instance's dtype (float64, or float32 where the caller casts the arrays), and every
derivative and the whole-loop solve compute in it (numpy behaviour is switched on without float32
preference: Python numbers take the tensors' dtype); intra- and inter-op threads set to the run's.
XLA compiles on the first call: compile time is that first call less a second one, both before any
timed sample. Not selected unless asked for (`--backends tensorflow`, or the `frameworks` preset):
`make bench` keeps its time goal.
"""
from __future__ import annotations

import os
import re
import time
import types

import numpy as np

from ._protocol import DIVERGENCE_FACTOR, SOLVE_STATUSES, Backend, Infeasible, eager_step, has_module

_RUNNING, _OK, _NAN, _DIVERGED, _NOT_CONVERGED = 0, *SOLVE_STATUSES


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its C++ start-up notices, not errors
    import tensorflow as tf

    return tf


def setup(threads: int, device: str = "cpu") -> dict:
    tf = _tf()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import tensorflow.experimental.numpy as tnp

    # x @ A for vectors, .T, and numpy's type promotion (float64 stays float64)
    tnp.experimental_enable_numpy_behavior(prefer_float32=False)
    from problems._xp import register_namespace

    register_namespace(tf.Tensor, namespace())
    register_namespace(tf.Variable, namespace())
    info = {"tensorflow": tf.__version__, "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
    if device == "cuda":
        info["tf_gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    return info


def namespace():
    """tf.experimental.numpy with the array API's names the formulas use and it lacks."""
    tf = _tf()
    import tensorflow.experimental.numpy as tnp

    names = {name: getattr(tnp, name) for name in dir(tnp) if not name.startswith("_")}

    def placed(fn):
        def call(*args, device=None, **kwargs):  # TensorFlow places ops by its device scope
            return fn(*args, **kwargs)

        return call

    for name in ("eye", "zeros", "ones", "full", "arange", "asarray", "empty", "zeros_like", "ones_like"):
        names[name] = placed(names[name])

    def solve(a, b):
        return tf.linalg.solve(a, b[:, None])[:, 0] if len(b.shape) == 1 else tf.linalg.solve(a, b)

    def logaddexp(a, b):
        # tnp.logaddexp differentiates to 0 at a tie a == b (its maximum sends the gradient to one
        # argument, |a - b| has slope 0 at 0): at x = 0 the logistic gradient came out 0, not
        # A^T 1 / 2m. The max-shifted form with the shift's gradient stopped is exact everywhere.
        m = tf.stop_gradient(tnp.maximum(a, b))
        return m + tnp.log(tnp.exp(a - m) + tnp.exp(b - m))

    linalg = types.SimpleNamespace(solve=solve, det=tf.linalg.det, inv=tf.linalg.inv, slogdet=tf.linalg.slogdet,
                                   eigvalsh=tf.linalg.eigvalsh, cholesky=tf.linalg.cholesky)
    names.update(logaddexp=logaddexp, concat=tnp.concatenate, matrix_transpose=lambda x: tnp.swapaxes(x, -1, -2),
                 linalg=linalg, astype=lambda x, dtype: tf.cast(x, dtype))
    return types.SimpleNamespace(__name__="tensorflow.experimental.numpy (nablabench)", **names)


def _devices() -> list[str]:
    tf = _tf()
    return ["cpu", "cuda"] if tf.config.list_physical_devices("GPU") else ["cpu"]


def _asarray(a: np.ndarray, device: str):
    tf = _tf()
    with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
        # in a's own dtype: float32 stays float32, float64 float64 (a Python float, as numpy's, float64:
        # TensorFlow's own default for one is float32)
        return tf.constant(np.asarray(a))


def _sync(out):
    """CPU ops have run when eager calls return; where `out` (a tensor, or tensors in tuples, lists and
    dicts) lives on a GPU, wait for the devices before a clock is read."""
    if _on_gpu(out):
        _tf().test.experimental.sync_devices()


def _on_gpu(out) -> bool:
    if isinstance(out, (tuple, list)):
        return any(_on_gpu(o) for o in out)
    if isinstance(out, dict):
        return any(_on_gpu(o) for o in out.values())
    return "GPU" in getattr(out, "device", "")


def _xla(fn):
    """fn as one XLA program; what XLA cannot compile (an op without an XLA kernel, an op XLA lowers
    to that has no gradient) is a `skipped` row naming the op."""
    tf = _tf()
    # autograph off: the formulas and loops have no Python control flow on tensors (JAX traces them too)
    compiled = tf.function(fn, jit_compile=True, autograph=False)

    def call(*args):
        try:
            return compiled(*args)
        except tf.errors.InvalidArgumentError as exc:
            missing = re.search(r"on XLA_\w+: (\w+) \(No registered", str(exc))
            if missing is None:
                raise
            raise Infeasible(f"XLA cannot compile it: {missing.group(1)} has no XLA kernel here") from None
        except LookupError as exc:
            if "gradient registry has no entry" not in str(exc):
                raise
            raise Infeasible(f"under XLA, TensorFlow cannot differentiate it: {exc}") from None

    call.xla = True
    return call


def _compile(fn, args):
    """XLA compiles on a function's first call: compile_s is that call (trace, compile, run) less a
    second, warm one. Eager functions have nothing to compile."""
    if not getattr(fn, "xla", False):
        return fn, None
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        _sync(fn(*args))
        seconds.append(time.perf_counter() - start)
    return fn, max(seconds[0] - seconds[1], 0.0)


class _Compiled:
    """A value_and_grad under XLA that `_step` compiles together with its update."""

    def __init__(self, python_fn):
        self.python_fn, self.compiled = python_fn, _xla(python_fn)

    xla = True

    def __call__(self, *args):
        return self.compiled(*args)


def _on_tensors(fn):
    """A formula on TensorFlow tensors; what the namespace cannot do is a `skipped` row, with what."""

    def call(*args):
        try:
            return fn(*args)
        except (AttributeError, NotImplementedError, TypeError) as exc:
            raise Infeasible(f"the formula cannot run on TensorFlow tensors (tf.experimental.numpy): "
                             f"{type(exc).__name__}: {exc}"[:300]) from None

    return call


def _both(variants: dict) -> dict:
    """Each eager variant and its XLA twin (`-xla`; the analytic formula's is `xla`)."""
    out = {}
    for name, fn in variants.items():
        out[name] = fn
        out["xla" if name == "eager" else f"{name}-xla"] = _xla(fn)
    return out


def _gradient(f):
    tf = _tf()

    def value_and_grad(x, data):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = f(x, data)
        return value, tape.gradient(value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return value_and_grad


def _autodiff(problem) -> dict:
    tf = _tf()
    f = problem.f
    zero = tf.UnconnectedGradients.ZERO
    value_and_grad = _gradient(f)

    def grad(x, data):
        return value_and_grad(x, data)[1]

    def hvp_fwd_rev(x, v, data):
        with tf.autodiff.ForwardAccumulator(x, v) as acc:
            g = grad(x, data)
        out = acc.jvp(g, unconnected_gradients=zero)
        return out

    def hvp_rev_rev(x, v, data):
        with tf.GradientTape() as outer:
            outer.watch(x)
            g = grad(x, data)
            gv = tf.reduce_sum(g * v)
        return outer.gradient(gv, x, unconnected_gradients=zero)

    def hessian(x, data):
        with tf.GradientTape() as outer:
            outer.watch(x)
            g = grad(x, data)
        dim = int(np.prod(x.shape))
        return tf.reshape(outer.jacobian(g, x, unconnected_gradients=zero), (dim, dim))

    def jacobian(x, data):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x, data)
        return tape.jacobian(y, x, unconnected_gradients=zero)

    kinds = {"grad": {"tape": grad}, "hvp": {"fwd-rev": hvp_fwd_rev, "rev-rev": hvp_rev_rev},
             "hess": {"jacobian": hessian}, "jac": {"jacobian": jacobian}}
    return {d: _both(kinds[d]) for d in problem.derivatives if d in kinds}


def _functions(problem, mode):
    if mode == "analytic":
        return {d: _both({"eager": _on_tensors(getattr(problem, d))}) for d in problem.derivatives}
    return _autodiff(problem)


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
    vg = _on_tensors(problem.value_and_grad) if mode == "analytic" else _gradient(problem.f)
    eager = "eager" if mode == "analytic" else "tape"
    return {eager: vg, "xla" if mode == "analytic" else "tape-xla": _Compiled(vg)}


def _step(value_and_grad):
    """One descent step; an XLA variant's step is one XLA program, f and the update fused."""
    step = eager_step(value_and_grad.python_fn if isinstance(value_and_grad, _Compiled) else value_and_grad)
    return _xla(step) if isinstance(value_and_grad, _Compiled) else step


def _solvers(problem, mode):
    if problem.value_and_grad is None:
        return {}
    (vg, _) = _value_and_grad(problem, mode).values()
    return {"while-loop": _while_loop_solver(vg)}


def _while_loop_solver(value_and_grad):
    """The whole descent in one XLA-compiled tf.while_loop, as JAX's `while-loop`: solve(x0, data,
    step_size, f_star, eps, max_iter) -> (iterations, f, status code); the scalars go in as tensors,
    so that one compiled program serves the warm-up and the timed runs."""
    tf = _tf()

    def loop(x0, data, step_size, f_star, eps, max_iter):
        step_size = tf.cast(step_size, x0.dtype)  # the descent runs in x0's dtype (float32 stays float32)

        def body(k, x, value, gap0, status):
            value, g = value_and_grad(x, data)
            gap = value - f_star
            gap0 = tf.where(k == 0, gap, gap0)
            status = tf.where(gap <= eps, _OK, tf.where(~tf.math.is_finite(gap), _NAN, tf.where(
                gap > DIVERGENCE_FACTOR * (1.0 + tf.abs(gap0)), _DIVERGED,
                tf.where(k >= max_iter, _NOT_CONVERGED, _RUNNING))))
            running = status == _RUNNING
            return (tf.where(running, k + 1, k), tf.where(running, x - step_size * g, x), value, gap0, status)

        init = (tf.constant(0), x0, tf.constant(np.inf, x0.dtype), tf.constant(0.0, x0.dtype),
                tf.constant(_RUNNING))
        k, _, value, _, status = tf.while_loop(lambda k, x, v, g0, s: s == _RUNNING, body, init)
        return k, value, status

    compiled = _xla(loop)

    def solve(x0, data, step_size, f_star, eps, max_iter):
        return compiled(x0, data, step_size, tf.constant(f_star, x0.dtype), tf.constant(eps, x0.dtype),
                        tf.constant(max_iter, tf.int32))

    solve.xla = True
    return solve


def _gpu_peak_memory(device: str):
    if device != "cuda":
        return None
    tf = _tf()

    def reset() -> float:
        tf.config.experimental.reset_memory_stats("GPU:0")
        return float(tf.config.experimental.get_memory_info("GPU:0")["current"])

    return reset, lambda: float(tf.config.experimental.get_memory_info("GPU:0")["peak"])


backend = Backend(
    name="tensorflow",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("tensorflow"),
    setup=setup,
    devices=_devices,
    asarray=_asarray,
    to_numpy=lambda t: t.numpy(),
    to_float=float,
    sync=_sync,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=_solvers,
    compile=_compile,
    step=_step,
    gpu_peak_memory=_gpu_peak_memory,
    # eager with eager, XLA with XLA (`_both`), the whole-loop solve with the analytic one
    pairs={**dict.fromkeys(("tape", "fwd-rev", "rev-rev", "jacobian"), "eager"),
           **dict.fromkeys(("tape-xla", "fwd-rev-xla", "rev-rev-xla", "jacobian-xla"), "xla"),
           "while-loop": "while-loop"},
    kinds=("grad", "hvp", "hess", "jac"),
    accelerators=("cuda",),
    colour="tab:red",
    packages=("tensorflow", "tensorflow-cpu", "keras"),
    presets=("frameworks",),
)

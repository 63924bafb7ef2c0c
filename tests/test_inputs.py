"""Inputs that are not what they should be end in a message, never a traceback or a hang: a Dask
scheduler address where no scheduler answers, a problem whose instance raises at one size, and a
hand-derived derivative of the wrong shape (`wrong` for the variant that gave it, and no other)."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from bench.cli import main
from bench.sweep.results import read_results

pytestmark = pytest.mark.xdist_group(name=__name__)

SMALL = ["--backends", "numpy", "--problems", "least_squares", "--tasks", "eval", "--derivatives", "grad",
         "--n", "8", "--rounds", "1", "--max-passes", "1", "--no-progress"]
PATIENCE_S = 60  # far above the 10 s a scheduler has to answer (bench.sweep.cluster.CONNECT_TIMEOUT_S)


def _main_within(argv: list[str], limit_s: float = PATIENCE_S) -> tuple[int, float]:
    """main(argv)'s exit code and seconds, in a thread that must end within `limit_s` (one that
    hangs fails the test rather than the test run)."""
    ended: dict = {}

    def target():
        try:
            ended["code"] = main(argv)
        except BaseException as exc:  # reported below as the test's failure
            ended["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    took = time.monotonic() - start
    assert not thread.is_alive(), f"nablabench {' '.join(argv)} still running after {limit_s} s"
    if "error" in ended:
        raise AssertionError(f"nablabench raised {type(ended['error']).__name__}: {ended['error']}") from ended["error"]
    return ended["code"], took


def _assert_usage_error(capsys, argv: list[str], address: str) -> str:
    code, took = _main_within(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert address in captured.err and "nablabench: error:" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert took < 30, f"took {took:.0f} s"
    return captured.err


def _serve(handler) -> tuple[socket.socket, str]:
    """A TCP server on loopback that is not a Dask scheduler: each connection to `handler`."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.getsockname()[1]}"


def _garbage(conn: socket.socket) -> None:
    # what an HTTP proxy says to bytes it does not understand: its first 8 bytes read as a frame count
    with conn:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" * 8)
        time.sleep(1)


def test_a_server_that_answers_garbage_is_no_scheduler(tmp_path, capsys):
    server, address = _serve(_garbage)
    with server:
        err = _assert_usage_error(capsys, ["run", *SMALL, "--out", str(tmp_path / "x.csv"),
                                           "--executor", "dask", "--scheduler", address], address)
    assert "does not answer as a Dask scheduler" in err


def test_a_closed_port_is_no_scheduler(tmp_path, capsys):
    with socket.socket() as bound:  # bound, not listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{bound.getsockname()[1]}"
        err = _assert_usage_error(capsys, ["run", *SMALL, "--out", str(tmp_path / "x.csv"),
                                           "--executor", "dask", "--scheduler", address], address)
    assert "refused" in err


@pytest.mark.slow  # waits out the scheduler's 10 s
def test_an_http_server_is_no_scheduler(tmp_path, capsys):
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        err = _assert_usage_error(capsys, ["run", *SMALL, "--out", str(tmp_path / "x.csv"),
                                           "--executor", "dask", "--scheduler", address], address)
    finally:
        server.shutdown()
        server.server_close()
    assert f"No Dask scheduler answered at {address} within 10 s" in err


PROBLEM_FILE = '''
"""f(x) = 1/2 sum_i a_i x_i^2, with gradient a * x; `{name}`."""
import numpy as np

from problems import Instance, Problem, array_namespace


def f(x, data):
    xp = array_namespace(x)
    return 0.5 * xp.sum(data["a"] * x * x)


def grad(x, data):
    return ({grad})


def instance(n, seed=0):
    if n > {largest}:
        raise ValueError("no instance above n = {largest}")
    rng = np.random.default_rng([seed, n])
    return Instance("{name}", n, seed, x0=np.ones(n), data={{"a": 1.0 + rng.random(n)}})


{name} = Problem(name="{name}", f=f, grad=grad, instance=instance)
'''


def _problem_file(folder, name: str, *, grad: str = 'data["a"] * x', largest: int = 10**6) -> str:
    path = folder / f"{name}.py"
    path.write_text(PROBLEM_FILE.format(name=name, grad=grad, largest=largest))
    return f"{path}:{name}"


def test_check_fails_a_problem_whose_instance_raises_at_one_size(tmp_path, capsys, registry):
    spec = _problem_file(tmp_path, "small_only", largest=8)
    code = main(["check", spec, "--n", "4,12", "--seeds", "0", "--backends", "autograd"])
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err
    assert "nablabench check: FAILED: small_only f" in captured.out
    assert "n=12" in captured.out and "ValueError: no instance above n = 8" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_a_gradient_of_the_wrong_shape_is_wrong_and_marks_no_other_variant(tmp_path, registry):
    spec = _problem_file(tmp_path, "short_grad", grad='data["a"][:-1] * x[:-1]')  # one entry too few
    out = tmp_path / "short.csv"
    assert main(["run", "--problems", spec, "--backends", "numpy,torch", "--tasks", "eval", "--derivatives", "grad",
                 "--n", "8", "--rounds", "1", "--max-passes", "1", "--sample-time", "0.001", "--no-progress",
                 "--out", str(out)]) == 0
    df = read_results([out])
    grads = df[df["derivative"] == "grad"].drop_duplicates(["backend", "mode", "variant"])
    analytic, autodiff = grads[grads["mode"] == "analytic"], grads[grads["mode"] == "autodiff"]
    assert set(analytic["backend"]) == {"numpy", "torch"} and set(autodiff["backend"]) == {"torch"}
    for row in analytic.itertuples():
        assert row.status == "wrong", (row.backend, row.status, row.message)
        assert "shape (7,) where (8,) was expected" in row.message, row.message
    # torch's autodiff has no independent result to be checked against (its only one, the analytic
    # formula, has the wrong shape): not timed, and saying why, never marked with the formula's error
    for row in autodiff.itertuples():
        assert row.status in ("ok", "skipped"), (row.variant, row.status, row.message)
        if row.status == "skipped":
            assert "torch's analytic grad" in row.message and "has shape (7,) where (8,) was expected" in row.message

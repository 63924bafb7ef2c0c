"""The results file survives what a careful user and a crash do to it: a row cut mid-write, a resume
under other settings, two runs on one file, and inputs refused before any work (property tests with
Hypothesis where the space is large)."""
from __future__ import annotations

import json
import math
import string

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bench
from bench.cli import build_parser, main
from bench.options import UsageError, validate_run
from bench.sweep.results import COLUMNS, SCHEMA_VERSION, CsvSink, OutLock, read_results, set_aside_partial_row

pytestmark = pytest.mark.xdist_group(name=__name__)  # module fixtures: one process

TINY = ["run", "--backends", "numpy,autograd", "--problems", "least_squares", "--tasks", "eval", "--derivatives",
        "grad", "--n", "8,16", "--rounds", "2", "--max-passes", "2", "--sample-time", "0.001", "--threads", "1",
        "--no-progress"]
VARIANT = ["task", "problem", "n", "backend", "derivative", "mode", "variant", "part", "repeat"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def _copy(run, folder, name="copy"):
    out = folder / f"{name}.csv"
    out.write_bytes(run.read_bytes())
    out.with_suffix(".meta.json").write_bytes(run.with_suffix(".meta.json").read_bytes())
    return out


def _parts(path) -> list[tuple]:
    """Each (variant, part) a file holds, once; asserts no sample is there twice."""
    samples = list(read_results([path])[VARIANT].itertuples(index=False, name=None))
    assert len(samples) == len(set(samples)), "a sample was written twice"
    return sorted({sample[:-1] for sample in samples})


def test_a_row_cut_mid_write_is_set_aside_and_resume_finishes_the_file(tiny_run, tmp_path, capsys):
    cut = _copy(tiny_run, tmp_path)
    cut.write_bytes(tiny_run.read_bytes()[:-40])  # the last row, cut mid-write
    rows = read_results([cut])  # report and compare read it, leaving the partial row out
    assert len(rows) == len(read_results([tiny_run])) - 1
    read_results([cut])  # a command reads a file more than once: the partial row is named once
    assert capsys.readouterr().err.count("partial row") == 1
    assert main([*TINY, "--out", str(cut), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "set aside in" in err and "runs again" in err
    assert _parts(cut) == _parts(tiny_run)  # every part of every variant, no sample twice
    (side,) = tmp_path.glob("copy.csv.partial-*")
    assert side.read_bytes().endswith(tiny_run.read_bytes()[-80:-40])


def test_a_resume_under_other_settings_is_refused_naming_each(tiny_run, tmp_path, capsys):
    copy = _copy(tiny_run, tmp_path)
    before = copy.read_bytes()
    changed = list(TINY)
    changed[changed.index("--max-passes") + 1] = "3"
    assert main([*changed, "--sample-time", "0.002", "--out", str(copy), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "max_passes 2 then, 3 now" in err and "min_sample_s: 0.001 then, 0.002 now" in err
    larger = [*TINY[:TINY.index("--n")], "--n", "8,16,32", *TINY[TINY.index("--n") + 2:]]
    assert main([*larger, "--out", str(copy), "--resume"]) == 0  # more cells, timed the same way: allowed
    capsys.readouterr()
    before = copy.read_bytes()
    assert main([*TINY, "--preset", "ci", "--out", str(copy), "--resume"]) == 2
    assert "preset: 'default' then, 'ci' now" in capsys.readouterr().err
    assert copy.read_bytes() == before  # refused before any work


def test_a_resume_of_another_schema_version_is_refused(tiny_run, tmp_path, capsys):
    copy = _copy(tiny_run, tmp_path)
    frame = pd.read_csv(copy, keep_default_na=False)
    frame.assign(schema_version=SCHEMA_VERSION - 1).to_csv(copy, index=False)
    assert main([*TINY, "--out", str(copy), "--resume"]) == 2
    assert f"schema version {SCHEMA_VERSION - 1}" in capsys.readouterr().err


def test_a_resume_of_a_missing_file_says_it_starts_a_new_run(tmp_path, capsys):
    assert main([*TINY, "--n", "8", "--max-passes", "1", "--out", str(tmp_path / "new.csv"), "--resume"]) == 0
    assert "does not exist; --resume starts a new run" in capsys.readouterr().err


def test_a_second_run_on_a_file_being_written_is_refused_naming_the_first(tiny_run, tmp_path, capsys):
    copy = _copy(tiny_run, tmp_path)
    running = OutLock(copy)
    assert running.acquire() is None
    try:
        before = copy.read_bytes()
        assert main([*TINY, "--out", str(copy), "--resume"]) == 2
        err = capsys.readouterr().err
        assert "is being written by pid" in err and "wait for that run to end" in err
        assert main([*TINY, "--out", str(copy), "--overwrite"]) == 2
        assert copy.read_bytes() == before
    finally:
        running.release()


def test_a_stale_lock_is_taken_over_saying_whose_it_was(tmp_path, capsys):
    out = tmp_path / "stale.csv"
    out.with_name("stale.csv.lock").write_text("pid 999999 on nowhere since 2026-01-01T00:00:00")  # no flock held
    assert main([*TINY, "--n", "8", "--max-passes", "1", "--out", str(out)]) == 0
    assert "took over the lock of pid 999999 on nowhere" in capsys.readouterr().err
    assert not out.with_name("stale.csv.lock").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--n", "99999999999999999999"], "is above 1e+09"),
    (["--n-logspace", "1,30,3"], "reaches past 1e+09"),
    (["--n", "1000000000", "--derivatives", "hess"], "no cell fits in this machine's"),
    (["--seed=-1"], "--seed must be >= 0"),
    (["--report", "FILE"], "it must name a folder"),
])
def test_inputs_that_cannot_run_are_refused_before_any_work(argv, expected, tmp_path, capsys):
    (tmp_path / "FILE").write_text("")
    argv = [str(tmp_path / a) if a == "FILE" else a for a in argv]
    args = [a for a in TINY if a not in ("8,16", "--n")] if "--n" in argv or "--n-logspace" in argv else TINY
    out = tmp_path / "never.csv"
    assert main([*args, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not out.exists()


def test_report_and_check_refuse_bad_outputs_and_seeds(tiny_run, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["report", str(tiny_run), "--out", str(tmp_path / "afile")]) == 2
    assert "must name a folder" in capsys.readouterr().err
    assert main(["check", "least_squares", "--seeds=-1"]) == 2
    assert "--seeds" in capsys.readouterr().err
    broken = _copy(tiny_run, tmp_path, "broken")
    broken.with_suffix(".meta.json").write_text("{not json")
    for argv in (["report", str(broken), "--out", str(tmp_path / "r")], ["compare", str(broken), str(tiny_run)],
                 [*TINY, "--out", str(broken), "--resume"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is not readable metadata" in err and "Traceback" not in err


def test_the_api_takes_the_command_lines_strings_or_refuses(tmp_path):
    with pytest.raises(UsageError, match="--passes must be an integer; got 2.5"):
        bench.run(passes=2.5, out=tmp_path / "x.csv")
    with pytest.raises(UsageError, match="--threads must be an integer"):
        bench.run(threads="one", out=tmp_path / "x.csv")
    request = validate_run(**_options(threads="1", passes="2", sample_time="0.001", out=str(tmp_path / "y.csv")))
    assert request.settings.threads == 1 and request.settings.min_sample_s == 0.001
    assert {job.passes for job in request.jobs} == {2}


def _options(**given) -> dict:
    """bench.api.run's options with their defaults, as validate_run takes them."""
    import inspect

    defaults = {name: p.default for name, p in inspect.signature(bench.run).parameters.items()}
    return {**defaults, **given}


# ---- property tests ----------------------------------------------------------------------------------------

OPTIONS = ["--n", "--n-logspace", "--seed", "--passes", "--max-passes", "--rounds", "--max-rounds", "--threads",
           "--sample-time", "--target", "--eps", "--rtol", "--memory-fraction", "--backends", "--problems",
           "--devices", "--tasks", "--derivatives", "--modes", "--solvers", "--measure", "--preset"]
TEXT = st.text(alphabet=string.printable + "µ×∞", max_size=12)
VALUES = st.one_of(TEXT, st.integers(-10**22, 10**22).map(str), st.floats(allow_nan=True).map(str),
                   st.sampled_from(["0", "-1", "1", "2", "1e9", "1,2,3", "nan", "inf", "1.5", ",", "", "auto"]))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # examples: the profile's (conftest)
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), VALUES), min_size=1, max_size=4))
def test_any_option_value_parses_or_is_refused_with_a_message(tmp_path, pairs):
    """Never a traceback: argparse refuses (exit 2) or the options are validated (UsageError, exit 2)
    or accepted, before any work."""
    argv = ["run", "--out", str(tmp_path / "p.csv"), "--overwrite"]
    for option, value in pairs:
        argv.append(f"{option}={value}")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2
        return
    from bench.cli import RUN_OPTIONS

    try:
        validate_run(**{name: getattr(args, name) for name in RUN_OPTIONS}, progress=False)
    except UsageError as exc:
        assert str(exc)


def _value(dtype: str):
    if dtype in ("int64", "Int64"):
        return st.integers(0, 2**53)
    if dtype == "float64":
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    if dtype == "boolean":
        return st.booleans()
    return st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=20)


ROWS = st.fixed_dictionaries({name: _value(dtype) for name, dtype in COLUMNS.items() if name != "status"}).map(
    lambda row: {**row, "status": "ok"})


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # examples: the profile's (conftest)
@given(st.lists(ROWS, min_size=1, max_size=4))
def test_any_row_the_schema_allows_is_read_back_equal(tmp_path, rows):
    out = tmp_path / "round.csv"
    sink = CsvSink(out, append=False)
    sink.write(rows)
    sink.close()
    back = read_results([out]).to_dict("records")
    assert len(back) == len(rows)
    for wrote, read in zip(rows, back):
        for name, value in wrote.items():
            got = read[name]
            if isinstance(value, float):
                assert got == value or (math.isnan(value) and math.isnan(got)), name
            elif isinstance(value, str) and value == "":
                assert pd.isna(got), name  # an empty cell is a missing value
            else:
                assert got == value, name


@pytest.fixture(scope="module")
def three_parts(tiny_run):
    """The tiny run's bytes, its rows in batches: each (cell, part) written in one call."""
    return tiny_run.read_bytes()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # examples: the profile's (conftest)
@given(st.data())
def test_any_truncation_is_set_aside_whole_and_keeps_only_whole_parts(tmp_path_factory, three_parts, data):
    """Any cut of a valid file: what is kept plus what is set aside is the file; what is kept ends in a
    whole row, and every part it keeps is whole (a cut part runs again on --resume)."""
    original = three_parts
    header_end = original.index(b"\n") + 1
    at = data.draw(st.integers(header_end, len(original)))
    folder = tmp_path_factory.mktemp("cut")
    out = folder / "cut.csv"
    out.write_bytes(original[:at])
    said = set_aside_partial_row(out)
    kept = out.read_bytes()
    side = b"".join(p.read_bytes() for p in folder.glob("cut.csv.partial-*"))
    assert kept + side == original[:at] and kept.endswith(b"\n")
    assert (said is None) == (original[:at].endswith(b"\n"))
    keys = ["run_id", "task", "problem", "n", "backend", "device", "derivative", "part"]
    full = pd.read_csv(pd.io.common.BytesIO(original), keep_default_na=False).groupby(keys).size()
    if kept.count(b"\n") > 1:
        frame = pd.read_csv(pd.io.common.BytesIO(kept), keep_default_na=False)
        cut, last = frame.groupby(keys).size(), tuple(frame[keys].iloc[-1])  # the last part written
        assert (cut.drop(last) == full.loc[cut.drop(last).index]).all()  # every other part whole
        assert cut[last] == full[last] or not said  # a part cut mid-write is set aside whole


def test_the_recorded_request_is_plain_json(tiny_run):
    (meta,) = json.loads(tiny_run.with_suffix(".meta.json").read_text()).values()
    assert meta["request"]["preset"] == "default" and meta["request"]["settings"]["threads"] == 1


# ---- rows whose message spans lines ------------------------------------------------------------------------

def _parts_with_messages_of_several_lines(folder) -> tuple[bytes, list[int], list[int]]:
    """A file as the runner writes it, one call a part, whose `error` rows carry an exception's text of
    several lines with quotes in it; with the offsets where each row ends and where each part ends."""
    import csv
    import io

    from bench.sweep.results import _cell_text

    base = {"schema_version": SCHEMA_VERSION, "run_id": "r1", "timestamp": "t", "task": "eval", "problem": "p",
            "backend": "numpy", "device": "cpu", "dtype": "float64", "derivative": "grad"}
    parts = [[{**base, "n": n, "part": part, "mode": "analytic", "variant": "eager", "repeat": r, "status": "ok",
               "time_s": 1e-6 * (r + 1)} for r in range(2)]
             + [{**base, "n": n, "part": part, "mode": "autodiff", "variant": "grad", "repeat": 0, "status": "error",
                 "message": 'ValueError: shapes\n(8,) and "(7,)"\nnot aligned'}]
             for n in (8, 16) for part in (0, 1)]
    out = folder / "lines.csv"
    sink = CsvSink(out, append=False)
    for rows in parts:
        sink.write(rows)
    sink.close()
    ends, part_ends, at = [], [], len(",".join(COLUMNS)) + 1
    for rows in parts:  # the oracle: each row's own text, as the csv module writes it
        for row in rows:
            text = io.StringIO()
            csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n").writerow(
                {k: _cell_text(row.get(k)) for k in COLUMNS})
            at += len(text.getvalue().encode())
            ends.append(at)
        part_ends.append(at)
    data = out.read_bytes()
    assert len(data) == at and data.count(b"\n") > len(ends) + 1  # newlines inside rows
    return data, [len(",".join(COLUMNS)) + 1, *ends], part_ends


def _check_cut(data: bytes, ends: list[int], part_ends: list[int], at: int, folder) -> None:
    """A cut of `data` at `at`: the rows read are the whole ones before it; --resume's set-aside keeps
    whole rows and whole parts (a part cut mid-write goes aside whole), saying so exactly when a row was cut."""
    out = folder / "cut.csv"
    out.write_bytes(data[:at])
    whole_rows = sum(1 for end in ends[1:] if end <= at)
    assert len(read_results([out])) == whole_rows  # what report and compare read
    said = set_aside_partial_row(out)
    kept = out.read_bytes()
    side = b"".join(p.read_bytes() for p in folder.glob("cut.csv.partial-*"))
    assert kept + side == data[:at]
    assert (said is None) == (at in ends)
    assert len(kept) in ends  # it ends in a whole row
    assert len(kept) in part_ends or len(kept) == ends[0] or not said  # and, where a write was cut, a whole part
    assert len(read_results([out])) == sum(1 for end in ends[1:] if end <= len(kept))


def test_a_row_whose_message_spans_lines_cut_after_its_newline_is_set_aside_whole(tmp_path):
    data, ends, part_ends = _parts_with_messages_of_several_lines(tmp_path)
    inside = data.rindex(b"not aligned")  # after the last row's inner newlines: its line count says nothing
    _check_cut(data, ends, part_ends, inside, tmp_path)
    assert (tmp_path / "cut.csv").read_bytes() == data[:part_ends[-2]]  # the last part set aside whole


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # examples: the profile's (conftest)
@given(st.data())
def test_any_truncation_of_rows_whose_messages_span_lines_keeps_only_whole_rows(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("lines")
    original, ends, part_ends = _parts_with_messages_of_several_lines(folder)
    _check_cut(original, ends, part_ends, data.draw(st.integers(ends[0], len(original))), folder)


def test_a_file_cut_inside_its_header_is_refused_saying_so(tiny_run, tmp_path, capsys):
    cut = _copy(tiny_run, tmp_path, "header")
    cut.write_bytes(tiny_run.read_bytes()[:100])
    assert main([*TINY, "--out", str(cut), "--resume"]) == 2
    assert "ends inside its header" in capsys.readouterr().err

"""Claims streamed as they are decided: every claim once, the same entries as the final result, in a fixed
order; each experiment its own Bonferroni family at α / E; a compile interrupted quietly."""
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading

import pytest
from conftest import interruptible

from simulator import simulate
from simulator.experiments import CATALOG
from simulator.runs import warmup
from simulator.runs.warmup import in_stream_order
from simulator.theory.verdict import z_threshold

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"runs": 2, "epochs": 1}  # the training experiment's budget; --samples for the others


def _small_run(stream=None):
    return simulate(p=0.5, samples=2000, settings=SMALL, stream=stream, threads=1)


def test_every_claim_is_streamed_once_and_equals_the_final_entry():
    batches = []
    result = _small_run(lambda claims, head: batches.append((claims, head)))
    streamed = [c for claims, _ in batches for c in claims]
    assert sorted(c["id"] for c in streamed) == sorted(c["id"] for c in result.claims)
    final = {c["id"]: c for c in result.claims}
    assert all(c == final[c["id"]] for c in streamed)
    tested = [e for e in CATALOG.values() if e.self_tests]  # those that share the self-tests' alpha
    assert all(head["experiments"] == len(tested) and head["seed"] == result.meta["seed"] for _, head in batches)
    # The fastest-compiling experiments come first, whatever finished compiling first.
    first = in_stream_order(CATALOG.values())[0]
    assert {c["id"] for c in batches[0][0]} <= set(first.tests())


def test_declared_subclaims_cover_what_each_experiment_tests():
    result = _small_run()
    for row in result.checks:
        assert row["subclaim"] in CATALOG[row["experiment"]].tests(), row["experiment"]


def test_each_experiment_is_its_own_family_at_alpha_over_e():  # its self-tests
    result = _small_run()
    zstars = result.meta["z_thresholds"]
    assert list(zstars) == [name for name, e in CATALOG.items() if e.self_tests]
    assert [name for name, e in CATALOG.items() if not e.self_tests] == ["regime-map"]
    for name, zstar in zstars.items():
        tested = sum(r["experiment"] == name and r["kind"] not in ("enumeration", "measurement", "derivation",
                                                                   "effect", "equivalence")
                     for r in result.checks)  # the self-tests; findings are a family per sub-claim
        assert zstar == z_threshold(result.meta["alpha"] / len(zstars), tested)
    assert result.meta["z_threshold"] == max(zstars.values())
    one = simulate(p=0.5, experiments=["inverted-dropout"], samples=2000, threads=1)
    assert "z_thresholds" not in one.meta  # one experiment: the family is the run, as before


def test_the_streamed_table_holds_the_same_lines(cli_run):
    code, out, _ = cli_run("simulate", "--samples", "2000", "--set", "runs=2", "--set", "epochs=1", "--threads", "1")
    assert code == 0
    lines = out.splitlines()
    assert "split over 8 experiments" in lines[0]
    result = _small_run()
    for claim in result.claims:
        assert any(line.startswith(f"{claim['id']:<18} {claim['title']} — {claim['outcome'].upper()}")
                   for line in lines)
    assert lines[-1].startswith("(--detail prints all") and "z* by experiment" in lines[-2]


def test_ctrl_c_while_compiling_is_quiet(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # an empty cache: the first run
    proc = subprocess.Popen([sys.executable, "cli.py", "simulate", "--progress"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=interruptible)
    seen = b""
    while b"compiling kernels" not in seen:
        ch = proc.stderr.read(1)
        assert ch, seen
        seen += ch
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    text = (seen + err).decode()
    assert proc.returncode == 130 and "Traceback" not in text and "interrupted" in text


def _seconds(lane):
    return sum(warmup.compile_seconds(e) for e in lane)


def test_the_compile_lanes_split_the_work_as_lpt_and_keep_the_stream_order():
    todo = [e for e in in_stream_order(CATALOG.values()) if e.name != "regime-map"]  # the kernels' owners
    for lanes in (2, 3, 4):
        split = warmup.plan(todo, lanes)
        assert sorted(e.name for lane in split for e in lane) == sorted(e.name for e in todo)
        assert all([e for e in todo if e in lane] == lane for lane in split)  # each lane in the stream's order
        # The best split, by brute force over every assignment: LPT is within 4/3 of it (Graham 1969).
        best = min(max(sum(warmup.compile_seconds(e) for e, k in zip(todo, ks) if k == lane) for lane in range(lanes))
                   for ks in itertools.product(range(lanes), repeat=len(todo)))
        assert best <= max(map(_seconds, split)) <= (4 / 3 - 1 / (3 * lanes)) * best + 1e-9
    two = [[e.name for e in lane] for lane in warmup.plan(todo, 2)]
    assert any({"network-shift", "task-impact"} <= set(lane) and "training" not in lane for lane in two)
    assert warmup.plan(todo[:1], 2) == [todo[:1]]


def test_a_claim_streams_once_every_experiment_that_tests_it_can_have_run():
    order = [e.name for e in in_stream_order(CATALOG.values())]
    # regime-map has no kernels, but its claims wait for the trainer's; network-shift's C5 for both.
    assert order.index("task-impact") < order.index("regime-map") < order.index("training")
    assert order.index("variance-shift") < order.index("network-shift")  # C5-eval is variance-shift's alone
    assert order == [e.name for e in in_stream_order(reversed(list(CATALOG.values())))]


class _Thread(threading.Thread):
    """A compile lane as a thread: the fake ``Process`` of :func:`_fake_spawn`."""

    def terminate(self):
        pass


def _fake_spawn(lane):
    class Context:
        Pipe = staticmethod(multiprocessing.Pipe)

        @staticmethod
        def Process(target, args, daemon):
            names, send = args  # the run closes its end once started, as a process's own copy stays open
            own = multiprocessing.connection.Connection(os.dup(send.fileno()), readable=False)
            return _Thread(target=lane, args=(names, own), daemon=daemon)

    return lambda _kind: Context


@pytest.mark.parametrize("reports", [0, 1, 3])
def test_a_lane_that_dies_leaves_its_experiments_to_the_run(monkeypatch, reports):
    # A lane reports its first `reports` experiments, then ends without a word (killed, or out of memory):
    # the run still gets every experiment, in the stream's order, and does not wait for the rest.
    def lane(names, report):
        for name in names[:reports]:
            report.send(name)
        report.close()

    monkeypatch.setattr(warmup, "cold", lambda e: True)
    monkeypatch.setattr(warmup.multiprocessing, "get_context", _fake_spawn(lane))
    counts = []
    got = list(warmup.ready(CATALOG.values(), lambda what, done, total: counts.append((done, total))))
    assert [e.name for e in got] == [e.name for e in in_stream_order(CATALOG.values())]
    assert counts[0] == (0, len(CATALOG)) and counts[-1] == (len(CATALOG), len(CATALOG))

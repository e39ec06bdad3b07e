"""Grid points on Dask: identical output wherever the points run, even when a worker dies."""
import json
import os
import signal

import pytest

distributed = pytest.importorskip("distributed")

from simulator.present.output import sweep_csv  # noqa: E402
from simulator.runs.sweep import sweep  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

GRID = {"p": "0.2,0.4,0.6,0.8", "v": "1,3"}
SETTINGS = {"dist": "normal"}


@pytest.fixture(scope="module")
def in_process():
    return sweep_csv(sweep("inverted-dropout", GRID, samples=200_000, settings=SETTINGS))


def test_local_cluster_is_byte_identical(in_process):
    on_two = sweep_csv(sweep("inverted-dropout", GRID, samples=200_000, settings=SETTINGS, workers=2))
    assert on_two == in_process


def test_a_killed_worker_changes_nothing(in_process):
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one(label, done, total):
            if not killed and done >= 1:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        result = sweep("inverted-dropout", GRID, samples=200_000, settings=SETTINGS,
                       scheduler=cluster.scheduler_address, progress=kill_one)
        assert killed
        assert sweep_csv(result) == in_process
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "not-an-address"])
def test_bad_scheduler_is_a_clear_error(capsys, address):
    code, out, err = run_cli(capsys, "sweep", "--experiment", "inverted-dropout", "--grid", "p=0.5",
                             "--scheduler", address)
    assert code == 2 and err.startswith("error: --scheduler") and err.count("\n") == 1


def test_the_map_on_a_local_cluster_is_byte_identical(tmp_path):
    """The C6 map's cells as Dask tasks: the same table and rows as trained here, checkpoint included."""
    from simulator.runs import regime as rg

    plan = rg.Plan(tasks=("teacher",), rows=(100, 200), keep=(0.5,), placements=("head",), bn=("false",),
                   lengths=("budget",), steps=20, min_epochs=1, pilot=2, cap=4)
    here = rg.regime_map(plan, seed=5, threads=1)
    there = rg.regime_map(plan, seed=5, workers=2, checkpoint=str(tmp_path / "map.partial"))
    assert there.table.to_json() == here.table.to_json()
    assert json.dumps(there.cells) == json.dumps(here.cells)


def test_workers_start_with_ctrl_c_ignored():
    """[dask] (issue 34) Ctrl-C reaches the whole process group: the workers leave it to this process, which
    closes the cluster, instead of printing their KeyboardInterrupt tracebacks."""
    from simulator.runs.cluster import start_client
    client, cluster = start_client(2, None)
    try:
        assert set(client.run(signal.getsignal, signal.SIGINT).values()) == {signal.SIG_IGN}
    finally:
        client.close()
        cluster.close()


def test_workers_running_other_code_are_refused_in_one_line():
    """[dask] (issue 34) A remote worker's code version is compared with this process's."""
    from simulator.core.errors import ParameterError
    from simulator.runs.checkpoint import identity
    from simulator.runs.cluster import check_workers
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert list(check_workers(client).values()) == [identity()]
        with pytest.raises(ParameterError, match=r"1 of 1 workers of the cluster run other code .*code") as e:
            check_workers(client, expected={**identity(), "code": "0.0.0+other"})
        assert "\n" not in str(e.value)

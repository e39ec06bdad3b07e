"""Grid points on a Dask cluster (the optional extra ``distributed``).

Each grid point is one task, :func:`simulator.runs.sweep.run_point`; its random
streams derive from the seed and the point, so where and in which order it runs
changes nothing in the output. Dask retries the tasks of a worker that is lost.
"""
import logging
import os
import re

from ..core.errors import ParameterError, shown
from ..core.interrupts import sigint_ignored
from .checkpoint import identity

_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://[^\s:/]+(:\d+)?/?$")


INSTALL = "--workers/--scheduler need Dask: pip install '.[distributed]'"


def _distributed():
    """The ``distributed`` package, or a one-line error naming the install command."""
    try:
        import distributed
    except ImportError:
        raise ParameterError(INSTALL) from None
    return distributed


def start_client(workers, scheduler):
    """``(client, cluster)``: a Dask client on ``scheduler``'s address (cluster None), or on a new local
    cluster of ``workers`` processes; a bad address, a refused connection or ``workers < 1`` is a
    :class:`ParameterError`."""
    distributed = _distributed()
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if scheduler:
        if not _ADDRESS.match(scheduler):
            raise ParameterError(f"--scheduler {scheduler}: expected an address like tcp://host:8786")
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as e:
            raise ParameterError(f"--scheduler {scheduler}: cannot connect ({type(e).__name__})") from None
    if int(workers) < 1:
        raise ParameterError(f"--workers {workers}: must be at least 1")
    # The workers start with Ctrl-C ignored (they inherit it): the terminal sends SIGINT to the whole process
    # group, and the interrupt is this process's to handle (it closes the cluster); a worker would only
    # print its KeyboardInterrupt traceback.
    with sigint_ignored():
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def check_workers(client, expected=None):
    """Refuse, in one line, a cluster whose workers run other code than this process (or other libraries).

    ``expected`` is :func:`simulator.runs.checkpoint.identity` of this process by default; each worker
    reports its own. A worker that cannot even import the package is refused the same way.
    """
    expected = identity() if expected is None else expected
    try:
        found = client.run(identity)
    except Exception as e:  # noqa: BLE001 — a worker without the package (ImportError), or one that fails
        raise ParameterError(f"the cluster's workers cannot run this program's code ({type(e).__name__}: "
                             f"{shown(' '.join(str(e).split())[:200])}); install this version on them") from None
    other = {address: ident for address, ident in found.items() if ident != expected}
    if other:
        address, ident = sorted(other.items())[0]
        differs = ", ".join(f"{k} {ident.get(k)} here {expected.get(k)}" for k in sorted(expected)
                            if ident.get(k) != expected.get(k))
        raise ParameterError(f"{len(other)} of {len(found)} workers of the cluster run other code ({address}: "
                             f"{differs}); install this version on them")
    return found


def worker_threads(workers, threads):
    """Numba threads per worker: as asked, else the cores of this machine shared among local workers."""
    if threads:
        return threads
    if workers:
        return max(1, (os.cpu_count() or 1) // int(workers))
    return None  # a remote worker uses its own NUMBA_NUM_THREADS


def on_cluster(tasks, run_point, workers=None, scheduler=None, threads=None):
    """Run ``tasks`` (index → arguments of ``run_point``) on Dask; an iterator of ``(index, rows)`` as they
    finish.

    The cluster is reached (or started) before this returns, so that a missing extra or a bad address is
    an error before any work. ``run_point`` is the function that trains one task, called with the task's
    arguments and ``threads=``: :func:`simulator.runs.sweep.run_point` for a sweep, a map's chunk trainer
    (:mod:`simulator.runs.regime`) for a map; passed in so that this module imports neither.
    """
    as_completed = _distributed().as_completed
    client, cluster = start_client(workers, scheduler)
    try:
        check_workers(client)
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    return _results(client, cluster, as_completed, tasks, run_point, worker_threads(workers, threads))


def _results(client, cluster, as_completed, tasks, run_point, per_worker):
    try:
        futures = {client.submit(run_point, *args, threads=per_worker, pure=False): i for i, args in tasks.items()}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

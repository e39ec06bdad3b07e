"""Entry of the benchmark's fresh-Python jobs: a JSON job on stdin, the JSON answer on stdout.

``python -m simulator.bench`` (see :func:`measure.run_subprocess`); the sides run here
so that numpy's BLAS threads, PyTorch's and XLA's do not meet Numba's.
"""
import json
import sys

from ..core.engine import set_threads
from .measure import gemm_job


def _main():
    """Run the job read from stdin; print its answer as the last line of stdout."""
    job = json.loads(sys.stdin.read())
    side = job["side"]
    if side == "torch":
        from .training import torch_job
        answer = torch_job(job)
    elif side == "jax":
        from .jax_side import jax_job
        answer = jax_job(job)
    elif side == "gemm":
        answer = {"flops_per_s": gemm_job([tuple(x) for x in job["shapes"]], job["seconds"], job.get("streams", 1))}
    else:
        from .sampling import run_engine, run_reference
        if side == "engine":
            set_threads(job.get("threads"))
            total, took, peak = run_engine(job["name"], job["samples"], job["seed"])
        else:
            total, took, peak = run_reference(job["name"], job["samples"], job["seed"], job.get("repeats", 1))
        answer = {"moments": total.tolist(), "seconds": took, "peak_bytes": peak}
    print(json.dumps(answer))


if __name__ == "__main__":
    _main()

"""The benchmark behind ``cli.py bench``: each workload against its reference, its peers and its ceiling.

- ``W1``: dropout-gradient with random inputs: n = 16, p = 0.5, per sample
  I ~ N(0, 1)ⁿ and δ ~ Bernoulli(p)ⁿ; moments of the 2n + 2 gradient and loss
  values of plain and inverted dropout (mean and variance of every component).
- ``W1F``: the same with one fixed input vector (only the masks random).
- ``W2``: variance-shift weighted sum: d = 64, p = 0.8, i.i.d. N(1, 1) inputs;
  moments of ``X_train = w·(δ∘x)/p``, ``X_test = w·x`` (paired) and of the
  squared deviations ``variance_shift.shift_blocks`` adds for Δ's error.
- ``W3``: network-shift: d = 256, depth 4, batches of 64, dropout before every
  BN; 64 training runs of ``W3_STEPS`` batches, then eval rows; per layer the
  real variance of the BN input, running_var, Li's ratio and the post-ReLU means.
  A sample is one row through the chain (training or eval).
- ``W4``: the training study (:mod:`simulator.nn.train`): diabetes, depth 2,
  width 64, BN, Adam, batch 32, every placement, 32 runs of 100 epochs.
- ``W5``: one large-N training cell: the synthetic teacher with 30,000 rows,
  batch 256, the same network.

W1–W3 run on the engine and on a vectorized numpy reference (one thread, in a
fresh Python) computing the same statistics, which must agree within their
joint MCSE (:mod:`.sampling`). W4 and W5 run the Numba trainer against PyTorch
eager, a ``torch.func`` vmap ensemble and a JAX jit + vmap + scan ensemble in
float32 and float64, per model-step, each peer in a fresh Python
(:mod:`.training`, :mod:`.jax_side`). Every workload is also measured against
its ceiling on this machine (:mod:`.ceiling`): W1, W1F and W2 against the
engine's generators drawing what one sample needs and nothing else, W3, W4 and
W5 against numpy's dgemm on the same matrix shapes; the targets are fractions
of those ceilings, the ratio to numpy is kept as information.
"""
from .ceiling import (
           SEED,
           blas_info,
           draws_per_mask_word,
           draws_per_normal,
           generation_rate,
           moments_rate,
           raw_generator_speed,
)
from .measure import PeakMemory, gemm_ceiling, gemm_rate
from .sampling import (
           DEFAULT_SAMPLES,
           GENERATION,
           REFERENCE_DIVISOR,
           REFERENCE_WORKLOADS,
           TARGETS,
           W1_N,
           W1_P,
           W2_D,
           W2_P,
           W3_D,
           W3_DEPTH,
           W3_M,
           W3_RUNS,
           W3_STEPS,
           ZMAX,
           Spec,
           agreement,
           chain_numpy,
           gradient_numpy,
           memory_growth,
           run_engine,
           run_reference,
           run_reference_subprocess,
           specs,
           thread_scaling,
           weighted_sum_numpy,
)
from .suite import CEILING_TARGETS, WORKLOADS, bound, run_bench
from .table import format_sampling, format_study, format_table
from .training import (
           MODES,
           SIZES,
           STUDIES,
           W4_TARGETS,
           W5_BATCH,
           W5_ROWS,
           jax_available,
           run_study,
           run_w4,
           study_config,
           study_data,
           study_task,
           torch_available,
)

__all__ = ["CEILING_TARGETS", "DEFAULT_SAMPLES", "GENERATION", "MODES", "PeakMemory", "REFERENCE_DIVISOR",
           "REFERENCE_WORKLOADS", "SEED", "SIZES", "STUDIES", "Spec", "TARGETS", "W1_N", "W1_P", "W2_D", "W2_P",
           "W3_D", "W3_DEPTH", "W3_M", "W3_RUNS", "W3_STEPS", "W4_TARGETS", "W5_BATCH", "W5_ROWS", "WORKLOADS",
           "ZMAX", "agreement", "blas_info", "bound", "chain_numpy", "draws_per_mask_word", "draws_per_normal",
           "format_sampling", "format_study", "format_table", "gemm_ceiling", "gemm_rate", "generation_rate",
           "gradient_numpy", "jax_available", "memory_growth", "moments_rate", "raw_generator_speed", "run_bench",
           "run_engine", "run_reference", "run_reference_subprocess", "run_study", "run_w4", "specs",
           "study_config", "study_data", "study_task", "thread_scaling", "torch_available",
           "weighted_sum_numpy"]

"""The native thread pools in the process (BLAS, OpenMP), pinned at start to SLUICE_NUM_THREADS.

numpy's and scipy's OpenBLAS and scikit-learn's OpenMP runtime each start a pool as wide as the machine's cores
when they load. A pool thread that wakes for a prediction spins on a core before it sleeps again: in a pod of one
or two cores that core is the event loop's or the load balancer's (docs/benchmarks.md, "The sklearn variance").
So the server sets every pool to SLUICE_NUM_THREADS, like onnxruntime's intra-op threads: through the environment
for libraries that load later (a model's runtime), and through threadpoolctl for those already loaded. A pool
variable the user set (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) wins."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

import threadpoolctl

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
OPENMP_VARIABLE = "OMP_NUM_THREADS"


def _given(environ: MutableMapping[str, str], *names: str) -> int | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def limits(num_threads: int, environ: MutableMapping[str, str] = os.environ) -> dict[str, int]:
    """Threads per pool kind ("blas", "openmp"): the user's variable when set, else `num_threads`. OpenBLAS reads
    OMP_NUM_THREADS when its own variable is unset, so that one counts for BLAS too."""
    openmp = _given(environ, OPENMP_VARIABLE)
    blas = _given(environ, *BLAS_VARIABLES, OPENMP_VARIABLE)
    return {"blas": blas or num_threads, "openmp": openmp or num_threads}


def pin_environment(num_threads: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the pool variables the user left unset, for the native libraries that load from now on."""
    chosen = limits(num_threads, environ)
    environ.setdefault(OPENMP_VARIABLE, str(chosen["openmp"]))
    for name in BLAS_VARIABLES:
        environ.setdefault(name, str(chosen["blas"]))


def pin_pools(num_threads: int, environ: MutableMapping[str, str] = os.environ) -> dict[str, int]:
    """Limit every BLAS and OpenMP pool loaded in the process. Call it on the thread that predicts (OpenMP's limit
    is per thread), after the model is loaded (its runtime may have brought a pool of its own). Returns the
    widest pool of each kind afterwards, for the log."""
    chosen = limits(num_threads, environ)
    threadpoolctl.threadpool_limits(limits={"blas": chosen["blas"], "openmp": chosen["openmp"]})
    widest: dict[str, int] = {}
    for pool in threadpoolctl.threadpool_info():
        kind: Any = pool.get("user_api")
        widest[kind] = max(widest.get(kind, 0), int(pool.get("num_threads", 0)))
    return widest

"""The native thread pools (BLAS, OpenMP) pinned at start: SLUICE_NUM_THREADS, unless the user set a pool's own
variable."""

from __future__ import annotations

import threadpoolctl

from sluice_serving import threads


def test_pools_follow_sluice_num_threads_when_no_pool_variable_is_set() -> None:
    environ: dict[str, str] = {}
    assert threads.limits(1, environ) == {"blas": 1, "openmp": 1}
    threads.pin_environment(1, environ)
    assert environ == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_a_pool_variable_the_user_set_wins_and_omp_num_threads_counts_for_openblas_too() -> None:
    environ = {"OMP_NUM_THREADS": "3"}
    assert threads.limits(1, environ) == {"blas": 3, "openmp": 3}
    threads.pin_environment(1, environ)
    assert environ == {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    assert threads.limits(1, {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "junk"}) == {"blas": 2, "openmp": 1}


def test_pinning_limits_every_loaded_blas_and_openmp_pool() -> None:
    import sklearn.linear_model  # noqa: F401 (loads scikit-learn's OpenMP runtime and scipy's OpenBLAS)

    original = threadpoolctl.threadpool_info()
    try:
        widest = threads.pin_pools(1, {})
        assert widest.get("blas") == 1
        assert {pool["num_threads"] for pool in threadpoolctl.threadpool_info()} == {1}
        assert threads.pin_pools(2, {"OMP_NUM_THREADS": "1"}) == {**widest, "blas": 1, "openmp": 1}
    finally:
        threadpoolctl.threadpool_limits(limits={p["prefix"]: p["num_threads"] for p in original})

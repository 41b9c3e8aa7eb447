"""Training inside a process shared with other threads or processes: its thread pools."""

from __future__ import annotations

import os


def limit_threads(threads: int) -> None:
    """Give this process's TensorFlow ``threads`` intra-op and inter-op threads.

    Call it before TensorFlow runs its first op: the pools are fixed once the runtime has started
    (then the environment variables, set first, still apply to a fresh import).
    """
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    import weightlab.training  # noqa: F401  (imports TensorFlow quietly, so first)

    # isort: split
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime has already started in this process; keep its pools
        pass

"""Training inside a process shared with other threads or processes: thread pools and randomness."""

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


def use_python_random() -> None:
    """Give Keras a Python random stream of its own, out of reach of the process's other threads.

    Keras draws the seeds of unseeded initializers from Python's global ``random`` (seeded by
    ``keras.utils.set_random_seed``). In a Dask worker the event-loop thread draws from it too
    (retry jitter, choice of peers), so the initial weights would depend on its timing. One
    ``random.Random`` takes both places: ``set_random_seed`` seeds it, the initializers draw from
    it, and the same seed gives the same weights as in a process of its own.
    """
    from weightlab.training import _keras_compat

    _keras_compat.use_python_random()


private_python_random = use_python_random  # the name executors.py imports

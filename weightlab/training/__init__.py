"""Everything that imports TensorFlow or Keras lives in this package, and only training imports it.

Importing it loads TensorFlow with its start-up chatter (CUDA probes on a machine without a GPU,
absl notices) kept off the user's terminal; if the import fails, that output is shown after all.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe happens here, still muted
            # Retracing notices from tf.function when a sweep builds one model per run.
            tf.get_logger().setLevel("ERROR")
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_import_tensorflow_quietly()

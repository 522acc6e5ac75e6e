"""Keras MLP member adapter: the only module that imports TensorFlow, and only when loaded."""

from __future__ import annotations

import os

import bentoml
import numpy as np

#: File name of the Keras 3 model inside its model-store directory.
KERAS_FILE = "model.keras"


class KerasAdapter:
    """The MLP called through one traced ``tf.function``.

    ``model.predict`` costs ~50 ms per call in set-up; a traced function with a
    fixed input signature runs the same graph in well under a millisecond.
    """

    runtime = "tensorflow"

    def __init__(self, model: bentoml.Model) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        net = keras.saving.load_model(model.path_of(KERAS_FILE), compile=False)
        width = int(net.input_shape[-1])
        self._tf = tf
        self._fn = tf.function(
            lambda x: net(x, training=False),
            input_signature=[tf.TensorSpec(shape=(None, width), dtype=tf.float32)],
        )
        self.predict_proba(np.zeros((1, width), dtype=np.float32))  # trace once, now

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        out = self._fn(self._tf.constant(rows, dtype=self._tf.float32))
        return np.asarray(out, dtype=np.float32).reshape(-1)

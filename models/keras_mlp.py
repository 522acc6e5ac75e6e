"""Keras MLP member adapter: LiteRT or TensorFlow, chosen per batch size by training.

Only this module imports TensorFlow, and only when the "tensorflow" runtime is chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from models.runtimes import Loader, RuntimeAdapter

#: Files inside the member's model-store directory.
KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"


class LiteRTNet:
    """The converted MLP in a single-threaded LiteRT interpreter (no TensorFlow import)."""

    def __init__(self, flatbuffer: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] = ()

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.shape != self._shape:  # batches vary in size; resizing costs ~20 us
            self._interpreter.resize_tensor_input(self._input, rows.shape, strict=False)
            self._interpreter.allocate_tensors()
            self._shape = rows.shape
        self._interpreter.set_tensor(self._input, rows)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output), dtype=np.float32).reshape(-1)


class TensorFlowNet:
    """The Keras model through one traced ``tf.function`` (``model.predict`` costs ~50 ms)."""

    def __init__(self, path: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        try:
            tf.config.threading.set_inter_op_parallelism_threads(1)
            tf.config.threading.set_intra_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already ran in this process (training): as it is
            pass
        net = keras.saving.load_model(path, compile=False)
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


class KerasAdapter(RuntimeAdapter):
    """P(pass) from the MLP; runtimes "litert" (default) and "tensorflow" (native)."""

    LOADERS: Mapping[str, Loader] = {
        "litert": lambda d, m: LiteRTNet((d / TFLITE_FILE).read_bytes()),
        "tensorflow": lambda d, m: TensorFlowNet(d / KERAS_FILE),
    }

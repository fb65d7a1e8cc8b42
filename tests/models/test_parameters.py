"""Parameter counts."""

import keras

from llm_tf.models.parameters import count_params


def test_counts_every_scalar_of_the_variables():
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    assert count_params(layer.weights) == 4 * 3 + 3
    assert count_params(layer.kernel for _ in range(2)) == 24
    assert count_params([]) == 0

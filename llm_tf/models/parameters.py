"""Parameter counts of models and variable lists."""

import math
from collections.abc import Iterable


def count_params(variables: Iterable) -> int:
    """Number of scalars in ``variables`` (anything with a ``shape``: Keras or TF variables).

    Example:
        >>> count_params(model.trainable_weights)
        1450498
    """
    return int(sum(math.prod(v.shape) for v in variables))

"""A view of a classifier that also returns the hidden states of chosen encoder layers.

The keras-hub ``BertBackbone`` is a functional model: the output of each
``transformer_layer_<i>`` is a tensor of its graph, so a functional model over the backbone's
inputs can return them next to the pooled output. The view shares every layer (and weight)
with the classifier and runs one forward pass; it adds no variables, so training through it
trains the classifier itself.
"""

import keras

from llm_tf.errors import ConfigError
from llm_tf.models.encoder import ENCODER_NAME

#: Layers of the classification head (``llm_tf.models.heads.logits_layer``), in call order.
HEAD_LAYERS = ("head_dropout", "logits")


def resolve_layers(indices: list[int], num_layers: int, field: str) -> list[int]:
    """Maps layer indices (negative counts from the last) to 0-based layer numbers.

    Raises:
        ConfigError: An index outside ``[-num_layers, num_layers)``; the message names ``field``.
    """
    resolved = []
    for index in indices:
        if not -num_layers <= index < num_layers:
            raise ConfigError(f"{field}: layer {index} does not exist (the encoder has {num_layers} layers: "
                              f"0..{num_layers - 1}, or -1 for the last)")
        resolved.append(index % num_layers)
    return resolved


def classifier_with_hidden_states(classifier: keras.Model, layers: list[int]) -> keras.Model:
    """Returns a model giving the classifier's ``logits`` and the ``hidden_states`` of ``layers``.

    Args:
        classifier: A model from ``llm_tf.models.classifier.build_classifier`` (an ``encoder``
            layer, then ``head_dropout`` and ``logits`` on the pooled output).
        layers: 0-based transformer layer numbers (see :func:`resolve_layers`).

    Returns:
        A functional model from the classifier's inputs to ``{"logits": [batch, classes],
        "hidden_states": [[batch, length, hidden], ...]}`` sharing the classifier's layers.

    Example:
        >>> view = classifier_with_hidden_states(classifier, [0, 1])
        >>> outputs = view(inputs)   # outputs["logits"] equals classifier(inputs)
    """
    encoder = classifier.get_layer(ENCODER_NAME)
    hidden = [encoder.get_layer(f"transformer_layer_{i}").output for i in layers]
    features = keras.Model(encoder.input, {"pooled_output": encoder.output["pooled_output"], "hidden_states": hidden},
                           name="encoder_with_hidden_states")(classifier.input)
    x = features["pooled_output"]
    for name in HEAD_LAYERS:
        x = classifier.get_layer(name)(x)
    return keras.Model(classifier.input, {"logits": x, "hidden_states": features["hidden_states"]},
                       name=f"{classifier.name}_with_hidden_states")

"""FGM adversarial training (Miyato et al., 2017): a second loss on perturbed embeddings.

Each training step computes the clean loss and its gradient ``g`` with respect to the token
embedding table, then the loss again with the table moved by ``r = epsilon * g / ||g||`` (the
direction that raises the loss most, to first order), and applies the sum of both gradients.
The perturbed pass uses Keras's ``stateless_call`` with the table's value replaced, so no
variable is written (it works under any distribution strategy; each replica perturbs along its
own batch's gradient).
"""

import keras
import tensorflow as tf

from llm_tf import compat
from llm_tf.errors import ConfigError

#: Path suffix of the keras-hub BERT token embedding table.
TOKEN_EMBEDDING = "token_embedding/embeddings"


def fgm_perturbation(gradient, epsilon: float) -> tf.Tensor:
    """Returns ``epsilon * g / ||g||`` (zero where the gradient is zero), as a dense tensor."""
    gradient = tf.convert_to_tensor(gradient)
    return tf.stop_gradient(epsilon * gradient / (tf.norm(gradient) + 1e-12))


class FGMModel(keras.Model):
    """A functional model whose training step adds the FGM adversarial loss.

    Args:
        inputs, outputs: The functional graph (e.g. ``model.input``, ``model.output`` of a
            task model; the layers are shared).
        epsilon: Size of the embedding perturbation.
        embedding_path: Path suffix of the embedding variable to perturb.

    Raises:
        ConfigError: (at the first step, or from :meth:`embedding_index`) no trainable variable
            matches ``embedding_path``.
    """

    def __init__(self, inputs, outputs, epsilon: float, embedding_path: str = TOKEN_EMBEDDING, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.fgm_epsilon = epsilon
        self.embedding_path = embedding_path

    def embedding_index(self) -> int:
        """The position of the perturbed embedding among ``trainable_weights``.

        Raises:
            ConfigError: No trainable variable ends with ``embedding_path`` (e.g. LoRA froze it).
        """
        for i, weight in enumerate(self.trainable_weights):
            if weight.path.endswith(self.embedding_path):
                return i
        raise ConfigError(
            f"trainer.fgm_epsilon: no trainable variable ends with '{self.embedding_path}' "
            "(FGM needs a trainable token embedding; LoRA freezes it)"
        )

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        weights = self.trainable_weights
        index = self.embedding_index()
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            compat.loss_tracker(self).update_state(compat.unscale_loss_for_distribution(loss), sample_weight=batch)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, weights)
        r = fgm_perturbation(gradients[index], self.fgm_epsilon)
        with tf.GradientTape() as tape:
            values = [w.value + r if i == index else w.value for i, w in enumerate(weights)]
            # non_trainable_variables, not _weights: it also holds the dropout seed-generator states.
            # Their advanced values are not written back: the next clean pass draws new masks anyway.
            state = [v.value for v in self.non_trainable_variables]
            adversarial_pred, _ = self.stateless_call(values, state, x, training=True)
            adversarial_loss = self.compute_loss(x=x, y=y, y_pred=adversarial_pred, sample_weight=sample_weight,
                                                 training=True)
            adversarial_scaled = self.optimizer.scale_loss(adversarial_loss)
        adversarial_gradients = tape.gradient(adversarial_scaled, weights)
        combined = [
            tf.convert_to_tensor(a) + tf.convert_to_tensor(b) if a is not None and b is not None
            else (a if b is None else b)
            for a, b in zip(gradients, adversarial_gradients)
        ]
        self.optimizer.apply_gradients(zip(combined, weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

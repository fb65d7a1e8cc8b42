"""Masked-language-model head on an encoder, tied to its token embedding (BERT pre-training)."""

import keras
import keras_hub


def build_masked_lm(encoder: keras.Model) -> keras.Model:
    """Puts a masked-LM head on an encoder.

    Args:
        encoder: A keras-hub BERT backbone.

    Returns:
        A functional model taking the encoder's inputs plus ``mask_positions``
        [batch, predictions] and returning float32 logits [batch, predictions, vocabulary].
    """
    inputs = dict(encoder.input)
    inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
    sequence = encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})["sequence_output"]
    # The pooler ([CLS] dense) feeds nothing in pre-training.
    encoder.get_layer("pooled_dense").trainable = False
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=encoder.token_embedding,
        intermediate_activation="gelu",
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype="float32",
        name="mlm_head",
    )
    logits = head(sequence, mask_positions=inputs["mask_positions"])
    return keras.Model(inputs, logits, name="masked_lm")

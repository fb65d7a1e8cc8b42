"""Model Garden's ``trainer.optimizer_config`` read as our ``trainer.optimizer``.

:class:`OptimizerTranslation` is the part of ``model_garden_keys``' translator that reads an
OptimizationConfig: its ``optimizer``, ``learning_rate`` and ``warmup`` one-ofs (``{type: T, T: {...}}``),
each type's fields set on ours, fixed (any other value refused) or ignored (:data:`OPTIMIZER_IGNORED`).
"""

import difflib
import math
from collections.abc import Callable

from llm_tf.training.model_garden_values import integer, number, same

#: The Model Garden key of the whole optimization config (Model Garden's OptimizationConfig).
OPTIMIZATION = "trainer.optimizer_config"
#: Model Garden optimizer types we run: our AdamW (Adam is AdamW with weight decay 0).
OPTIMIZERS = ("adamw", "adam")
#: Model Garden learning-rate schedule types we run (our ``trainer.optimizer.decay``).
LEARNING_RATES = ("polynomial", "constant")
#: Model Garden warm-up types we run (both linear here: a polynomial warm-up must have power 1).
WARMUPS = ("linear", "polynomial")

#: Model Garden optimizer_config key -> why it has no equivalent here (part of ``model_garden_keys.IGNORED``).
OPTIMIZER_IGNORED: dict[str, str] = {
    f"{OPTIMIZATION}.optimizer.adamw.exclude_from_weight_decay":
        "LayerNorm weights and biases are always excluded from weight decay",
    f"{OPTIMIZATION}.optimizer.adamw.name": "the optimizer's name is fixed",
    f"{OPTIMIZATION}.optimizer.adam.name": "the optimizer's name is fixed",
    f"{OPTIMIZATION}.learning_rate.polynomial.name": "the schedule's name is fixed",
    f"{OPTIMIZATION}.learning_rate.constant.name": "the schedule's name is fixed",
    f"{OPTIMIZATION}.warmup.linear.name": "the schedule's name is fixed",
    f"{OPTIMIZATION}.warmup.polynomial.name": "the schedule's name is fixed",
}


def warmup_fraction(steps: int, total: int) -> float:
    """The shortest decimal fraction f with ``int(f * total) == steps`` (how our schedule reads it)."""
    for digits in range(2, 18):
        fraction = round(steps / total, digits)
        if int(fraction * total) == steps:
            return fraction
    fraction = steps / total
    while int(fraction * total) < steps:
        fraction = math.nextafter(fraction, 1.0)
    return fraction


class OptimizerTranslation:
    """The translator's reading of ``trainer.optimizer_config`` (a mixin of ``model_garden_keys``' translator).

    It uses the translator's ``config``, ``values`` and ``ignored`` attributes and its ``error``,
    ``set`` and ``unknown`` methods.
    """

    def train_steps(self) -> int:
        """``trainer.train_steps`` of this source, else of the config (for warm-up and decay steps)."""
        trainer = self.values.get("trainer")
        given = trainer.get("train_steps") if isinstance(trainer, dict) else None
        if given is None:
            return int(self.config.trainer.train_steps)
        return integer(1)(given, "trainer.train_steps")

    def oneof(self, key: str, value, types: tuple[str, ...], all_types: tuple[str, ...]):
        """A Model Garden one-of (``{type: T, T: {...}}``).

        Returns:
            The ``type`` given (or None), the type whose fields are read (without ``type``: the
            one type given, if any) and those fields.
        """
        if value is None:
            return None, None, {}
        if not isinstance(value, dict):
            self.error(f"{key}: expected a mapping, got {value!r}")
        unknown = [k for k in value if k != "type" and k not in all_types]
        if unknown:
            self.unknown(f"{key}.{unknown[0]}")
        kind = value.get("type")
        given = [k for k in value if k != "type" and value[k] is not None]
        if kind is None:
            # No type: read the fields of the one type given (an override of a config whose type is set).
            if len(given) > 1:
                self.error(f"{key}: fields of several types ({', '.join(given)}) and no {key}.type")
            kind_used = given[0] if given else None
        else:
            kind_used = kind
        if kind_used is not None and kind_used not in types:
            self.error(f"{key}.type: '{kind_used}' has no equivalent here (expected one of: {', '.join(types)})")
        for other in given:
            if other != kind_used:
                self.ignored.append(f"{key}.{other}")  # Model Garden reads the selected type's fields only
        fields = value.get(kind_used) if kind_used else None
        if fields is not None and not isinstance(fields, dict):
            self.error(f"{key}.{kind_used}: expected a mapping, got {fields!r}")
        return kind, kind_used, (fields or {})

    def optimization(self, value) -> None:
        """``trainer.optimizer_config`` (Model Garden's OptimizationConfig) -> ``trainer.optimizer``."""
        key = OPTIMIZATION
        if value is None:
            return
        if not isinstance(value, dict):
            self.error(f"{key}: expected a mapping, got {value!r}")
        for name, item in value.items():
            if name == "optimizer":
                self.optimizer(f"{key}.optimizer", item)
            elif name == "learning_rate":
                self.learning_rate(f"{key}.learning_rate", item)
            elif name == "warmup":
                self.warmup(f"{key}.warmup", item)
            elif name == "ema":
                if item is not None:
                    self.error(f"{key}.ema: no moving average of the weights here (leave it null)")
            else:
                known = ["ema", "learning_rate", "optimizer", "warmup"]
                close = difflib.get_close_matches(str(name), known, n=1) or known
                self.error(f"unknown Model Garden config key '{key}.{name}' (did you mean: {', '.join(close)})")

    def fields(self, key: str, fields: dict, handlers: dict) -> None:
        """Each of a type's fields to its handler (``handler(full key, value)``), ignored, or unknown."""
        for name, item in fields.items():
            full = f"{key}.{name}"
            if name in handlers:
                handlers[name](full, item)
            elif full in OPTIMIZER_IGNORED:
                self.ignored.append(full)
            else:
                known = sorted([*handlers,
                                *(k.rsplit(".", 1)[1] for k in OPTIMIZER_IGNORED if k.startswith(key + "."))])
                close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
                hint = f"did you mean: {', '.join(close)}" if close else f"known there: {', '.join(known)}"
                self.error(f"unknown Model Garden config key '{full}' ({hint})")

    def to(self, ours: str, convert: Callable = number) -> Callable:
        """A handler setting ``trainer.optimizer.<ours>`` to the converted value (None: nothing)."""
        def handle(key, value):
            if value is not None:
                self.set(f"trainer.optimizer.{ours}", convert(value, key), key, value)

        return handle

    def must_be(self, expected, why: str) -> Callable:
        """A handler refusing any value but ``expected`` (or None), saying ``why``."""
        def handle(key, value):
            if value is not None and not same(value, expected):
                self.error(f"{key}: only {expected!r} is supported here, got {value!r} ({why})")

        return handle

    def optimizer(self, key: str, value) -> None:
        """``optimizer_config.optimizer``: AdamW or Adam (:data:`OPTIMIZERS`)."""
        all_types = ("sgd", "sgd_experimental", "adam", "adam_experimental", "adamw", "adamw_experimental", "lamb",
                     "rmsprop", "lars", "adagrad", "slide", "adafactor", "adafactor_keras")
        kind, used, fields = self.oneof(key, value, OPTIMIZERS, all_types)
        if kind == "adam":
            self.set("trainer.optimizer.weight_decay", 0.0, f"{key}.type", kind)  # Adam: no weight decay
        per_variable = self.must_be(None, "clipnorm clips each variable's gradient on its own; ours clips the "
                                          "global norm: use global_clipnorm")
        handlers = {
            "beta_1": self.to("beta_1"), "beta_2": self.to("beta_2"), "epsilon": self.to("epsilon"),
            "global_clipnorm": self.to("clipnorm"), "clipnorm": per_variable,
            "clipvalue": self.must_be(None, "gradients are clipped by global norm only"),
            "amsgrad": self.must_be(False, "AdamW without AMSGrad"),
        }
        if used == "adamw":
            handlers.update({
                "weight_decay_rate": self.to("weight_decay"),
                "gradient_clip_norm": self.to("clipnorm"),  # AdamWeightDecay's own global-norm clipping
                "include_in_weight_decay": self.must_be(None, "every weight but LayerNorm's and the biases decays"),
            })
            self.fields(f"{key}.adamw", fields, handlers)
        elif used == "adam":
            self.fields(f"{key}.adam", fields, handlers)

    def learning_rate(self, key: str, value) -> None:
        """``optimizer_config.learning_rate``: a polynomial decay over ``train_steps``, or constant."""
        all_types = ("constant", "stepwise", "exponential", "polynomial", "cosine", "power", "power_linear",
                     "power_with_offset", "step_cosine_with_offset")
        kind, used, fields = self.oneof(key, value, LEARNING_RATES, all_types)
        if used is None:
            return
        if used == "constant":
            if kind == "constant":
                self.set("trainer.optimizer.decay", "constant", f"{key}.type", kind)
            self.fields(f"{key}.constant", fields, {"learning_rate": self.to("learning_rate")})
            return
        polynomial = f"{key}.polynomial"
        if kind == "polynomial":
            power = fields.get("power", 1.0)
            decay = "linear" if power is None or same(power, 1.0) else "polynomial"
            self.set("trainer.optimizer.decay", decay, f"{key}.type", kind)

        def decay_steps(full, steps):
            if steps is None:
                return
            total = self.train_steps()
            if not same(steps, total):
                self.error(f"{full}={steps} differs from trainer.train_steps={total}: our schedule decays over "
                           "trainer.train_steps (drop decay_steps, or make it train_steps)")

        self.fields(polynomial, fields, {
            "initial_learning_rate": self.to("learning_rate"),
            "end_learning_rate": self.to("end_learning_rate"),
            "power": self.to("power"),
            "decay_steps": decay_steps,
            "cycle": self.must_be(False, "the schedule does not restart"),
            "offset": self.must_be(0, "the schedule starts at step 0"),
        })

    def warmup(self, key: str, value) -> None:
        """``optimizer_config.warmup``: linear, its steps read as our ``warmup_fraction``."""
        _, used, fields = self.oneof(key, value, WARMUPS, WARMUPS)
        if used is None:
            return

        def warmup_steps(full, steps):
            if steps is None:
                return
            steps = integer(0)(steps, full)
            total = self.train_steps()
            if total < 1 or steps >= total:
                self.error(f"{full}={steps} must be less than trainer.train_steps={total}")
            self.set("trainer.optimizer.warmup_fraction", warmup_fraction(steps, total), full, steps)

        handlers = {"warmup_steps": warmup_steps}
        if used == "linear":
            handlers["warmup_learning_rate"] = self.must_be(0, "warm-up starts from a learning rate of 0")
        else:
            handlers["power"] = self.must_be(1, "warm-up is linear")
        self.fields(f"{key}.{used}", fields, handlers)

"""Training curves of a ``model_dir``: loss, the eval metric and the learning rate per step, as a PNG.

Drawn from the ``metrics/step_<N>.json`` records the run writes after every loop
(:class:`llm_tf.training.callbacks.MetricsWriter`). They stay in ``model_dir`` across restarts,
so a resumed run draws the whole history, not only its own part.
"""

import os
from typing import Any

from llm_tf import plots
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training.callbacks import higher_is_better


def _series(records: list[dict], key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in records if isinstance(r.get(key), (int, float))]


def curve_data(records: list[dict], metric: str) -> dict[str, Any]:
    """The curves in metrics records.

    Args:
        records: ``metrics/step_<N>.json`` records (``model_dir.read_metrics_history``).
        metric: The eval metric to draw (e.g. ``val_accuracy``).

    Returns:
        ``loss`` (training loss per loop), ``val_loss`` and ``eval`` (``metric`` per
        evaluation), ``learning_rate`` (at each loop's end): lists of ``(step, value)``; and
        ``metric``.

    Example:
        >>> curve_data([{"step": 10, "loss": 0.7, "learning_rate": 0.01},
        ...             {"step": 20, "loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.8}], "val_accuracy")["eval"]
        [(20, 0.8)]
    """
    return {"metric": metric, "loss": _series(records, "loss"), "val_loss": _series(records, "val_loss"),
            "eval": _series(records, metric) if metric != "val_loss" else [],
            "learning_rate": _series(records, "learning_rate")}


def _plot(ax, points: list[tuple[int, float]], **style) -> None:
    steps, values = zip(*points)
    ax.plot(steps, values, marker="o" if len(points) <= 60 else None, markersize=3.5, **style)


def render_curves(data: dict[str, Any], path: str) -> None:
    """Draws :func:`curve_data` into a PNG: loss, eval metric and learning rate over the step.

    Panels without data (no evaluation, records older than the learning rate's) are left out.

    Raises:
        ValueError: Nothing to draw.
    """
    panels = [name for name, keys in (("loss", ("loss", "val_loss")), ("eval", ("eval",)),
                                      ("learning_rate", ("learning_rate",))) if any(data[k] for k in keys)]
    if not {"loss", "eval"} & set(panels):
        raise ValueError("no loss and no eval metric recorded: nothing to draw")
    plt = plots.pyplot()
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.9 * len(panels) + 0.6), sharex=True, squeeze=False)
    axes = dict(zip(panels, axes[:, 0]))
    if "loss" in axes:
        ax = axes["loss"]
        if data["loss"]:
            _plot(ax, data["loss"], color="tab:blue", label="training loss (mean over each loop)")
        if data["val_loss"]:
            _plot(ax, data["val_loss"], color="tab:orange", label="eval loss")
        ax.set_ylabel("loss")
        ax.set_title("Loss")
        ax.legend(fontsize=8)
    if "eval" in axes:
        ax = axes["eval"]
        name = data["metric"].removeprefix("val_")
        _plot(ax, data["eval"], color="tab:green", label=f"eval {name}")
        pick = max if higher_is_better(data["metric"]) else min
        best_step, best = pick(data["eval"], key=lambda point: point[1])
        ax.scatter([best_step], [best], marker="*", s=160, color="tab:red", zorder=3,
                   label=f"best {best:.4g} at step {best_step}")
        ax.set_ylabel(name)
        ax.set_title(f"Eval {name} (one point per evaluation)")
        ax.legend(fontsize=8)
    if "learning_rate" in axes:
        ax = axes["learning_rate"]
        _plot(ax, data["learning_rate"], color="tab:purple")
        ax.set_ylabel("learning rate")
        ax.set_title("Learning rate (at each loop's end)")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in axes.values():
        ax.grid(alpha=0.3)
    axes[panels[-1]].set_xlabel("step (training batches)")
    steps = [s for key in ("loss", "eval", "val_loss") for s, _ in data[key]]
    figure.suptitle(f"Training curves, step {min(steps)} to {max(steps)}")
    figure.tight_layout()
    plots.save_png(figure, path)


def write_training_curves(model_dir: str, metric: str) -> str | None:
    """Draws ``model_dir``'s metrics history into ``TRAINING_CURVES_PNG`` there.

    Args:
        model_dir: A training directory.
        metric: The eval metric to draw (``val_<trainer.best_metric>``).

    Returns:
        The PNG's path, or None when no metrics were recorded (nothing drawn).

    Raises:
        DataError: A metrics record that does not parse.
    """
    data = curve_data(model_dir_lib.read_metrics_history(model_dir), metric)
    if not data["loss"] and not data["eval"] and not data["val_loss"]:
        return None
    path = os.path.join(model_dir, model_dir_lib.TRAINING_CURVES_PNG)
    render_curves(data, path)
    return path

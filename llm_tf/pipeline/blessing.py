"""The Evaluator's blessing rule, kept apart so that it is easy to read and test."""

import dataclasses


@dataclasses.dataclass
class Blessing:
    """A blessing decision.

    Attributes:
        blessed: Whether the candidate may be pushed.
        reason: Why (one line).
        metric: The metric compared.
        candidate: The candidate's value.
        baseline: The served model's value (None when nothing is served).
    """

    blessed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float | None


def decide(metric: str, candidate: float, baseline: float | None, threshold: float, max_drop: float) -> Blessing:
    """Blesses a candidate above an absolute threshold and not worse than the baseline by more than a delta.

    Args:
        metric: The metric's name (higher is better).
        candidate: The candidate model's value.
        baseline: The currently served model's value on the same data, or None.
        threshold: The candidate must reach at least this value.
        max_drop: It may be at most this much below the baseline (negative: it must beat the
            baseline by that much).

    Returns:
        A :class:`Blessing`.
    """
    if candidate < threshold:
        return Blessing(False, f"{metric} {candidate:.4f} is below the threshold {threshold:.4f}", metric, candidate, baseline)
    if baseline is not None and candidate < baseline - max_drop:
        return Blessing(False, f"{metric} {candidate:.4f} is worse than the served model's {baseline:.4f} by more than "
                               f"{max_drop:.4f}", metric, candidate, baseline)
    against = f"served model {baseline:.4f}, allowed drop {max_drop:.4f}" if baseline is not None else "no served model"
    return Blessing(True, f"{metric} {candidate:.4f} >= threshold {threshold:.4f} ({against})", metric, candidate, baseline)

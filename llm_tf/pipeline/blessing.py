"""The Evaluator's blessing rule, kept apart so that it is easy to read and test."""

import dataclasses

#: Default share of the reference model's value a candidate must reach (a distilled student
#: against its teacher).
DEFAULT_MIN_SHARE = 0.97
# Float products such as 0.97 x 0.875 must not refuse a candidate that is exactly on the line.
_TOLERANCE = 1e-9


@dataclasses.dataclass
class Blessing:
    """A blessing decision.

    Attributes:
        blessed: Whether the candidate may be pushed.
        reason: Why (one line).
        metric: The metric compared.
        candidate: The candidate's value.
        baseline: The served model's value (None when nothing is served).
        reference: The reference model's value (None without a reference), e.g. the teacher's.
        min_share: The share of ``reference`` the candidate had to reach (None without a reference).
    """

    blessed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float | None
    reference: float | None = None
    min_share: float | None = None


def decide(metric: str, candidate: float, baseline: float | None, threshold: float, max_drop: float,
           reference: float | None = None, min_share: float = DEFAULT_MIN_SHARE) -> Blessing:
    """Blesses a candidate above an absolute threshold, not worse than the baseline by more than
    a delta, and, with a reference, at least ``min_share`` of the reference's value.

    Args:
        metric: The metric's name (higher is better).
        candidate: The candidate model's value.
        baseline: The currently served model's value on the same data, or None.
        threshold: The candidate must reach at least this value.
        max_drop: It may be at most this much below the baseline (negative: it must beat the
            baseline by that much).
        reference: Another model's value on the same data (a distilled student's teacher), or None.
        min_share: With a reference, the candidate must reach ``min_share x reference``
            (0.97: at least 97% of the teacher's accuracy; above 1: it must beat it).

    Returns:
        A :class:`Blessing`.

    Example:
        >>> decide("accuracy", 0.80, None, 0.5, 0.01, reference=0.85, min_share=0.97).reason
        "accuracy 0.8000 is below 97.0% of the reference's 0.8500 (needs 0.8245; it is 94.1% of it)"
    """
    share = None if not reference else candidate / reference

    def verdict(blessed: bool, reason: str) -> Blessing:
        return Blessing(blessed, reason, metric, candidate, baseline, reference,
                        min_share if reference is not None else None)

    if candidate < threshold:
        return verdict(False, f"{metric} {candidate:.4f} is below the threshold {threshold:.4f}")
    if reference is not None and candidate + _TOLERANCE < min_share * reference:
        return verdict(False, f"{metric} {candidate:.4f} is below {min_share:.1%} of the reference's {reference:.4f} "
                              f"(needs {min_share * reference:.4f}; it is {share:.1%} of it)")
    if baseline is not None and candidate < baseline - max_drop:
        return verdict(False, f"{metric} {candidate:.4f} is worse than the served model's {baseline:.4f} by more than "
                              f"{max_drop:.4f}")
    against = f"served model {baseline:.4f}, allowed drop {max_drop:.4f}" if baseline is not None else "no served model"
    if reference is not None:
        of = f", {share:.1%} of it" if share is not None else ""
        against += f"; reference {reference:.4f}{of}, needs >= {min_share:.1%}"
    return verdict(True, f"{metric} {candidate:.4f} >= threshold {threshold:.4f} ({against})")

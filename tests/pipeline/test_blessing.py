"""The Evaluator's blessing rule: absolute threshold AND no worse than served by more than a delta."""

from llm_tf.pipeline.blessing import decide


def test_blessed_without_baseline_above_threshold():
    result = decide("accuracy", 0.81, None, threshold=0.75, max_drop=0.01)
    assert result.blessed and "no served model" in result.reason


def test_below_threshold_is_refused():
    result = decide("accuracy", 0.70, None, threshold=0.75, max_drop=0.01)
    assert not result.blessed and "below the threshold" in result.reason


def test_worse_than_served_by_more_than_delta_is_refused():
    assert decide("accuracy", 0.795, 0.80, threshold=0.5, max_drop=0.01).blessed      # within the delta
    worse = decide("accuracy", 0.78, 0.80, threshold=0.5, max_drop=0.01)
    assert not worse.blessed and "worse than the served model's 0.8000" in worse.reason


def test_negative_delta_requires_beating_the_served_model():
    assert not decide("entity_f1", 0.80, 0.80, threshold=0.0, max_drop=-0.01).blessed
    assert decide("entity_f1", 0.82, 0.80, threshold=0.0, max_drop=-0.01).blessed

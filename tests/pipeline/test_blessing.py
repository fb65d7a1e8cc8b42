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


def test_a_reference_requires_its_share_and_the_reason_names_both_values():
    refused = decide("accuracy", 0.85, None, threshold=0.5, max_drop=0.01, reference=0.90, min_share=0.97)
    assert not refused.blessed and refused.reference == 0.90 and refused.min_share == 0.97
    assert refused.reason == ("accuracy 0.8500 is below 97.0% of the reference's 0.9000 (needs 0.8730; it is 94.4% "
                              "of it)")
    blessed = decide("accuracy", 0.88, None, threshold=0.5, max_drop=0.01, reference=0.90, min_share=0.97)
    assert (blessed.blessed and "0.8800" in blessed.reason
            and "reference 0.9000, 97.8% of it, needs >= 97.0%" in blessed.reason)


def test_exactly_the_share_passes_despite_float_rounding():
    # 0.9 * 0.8 is 0.7200000000000001 in floats; a candidate of 0.72 is exactly on the line.
    assert 0.9 * 0.8 > 0.72
    assert decide("accuracy", 0.72, None, threshold=0.0, max_drop=0.0, reference=0.8, min_share=0.9).blessed
    assert decide("accuracy", 0.875, None, threshold=0.0, max_drop=0.0, reference=0.875, min_share=1.0).blessed
    assert not decide("accuracy", 0.875, None, threshold=0.0, max_drop=0.0, reference=0.875, min_share=1.01).blessed


def test_every_rule_applies_with_a_reference():
    # Above the teacher's share but below the absolute threshold, or worse than the served model.
    low = decide("accuracy", 0.70, None, threshold=0.75, max_drop=0.01, reference=0.70, min_share=0.97)
    assert not low.blessed and "below the threshold" in low.reason
    worse = decide("accuracy", 0.80, 0.85, threshold=0.5, max_drop=0.01, reference=0.81, min_share=0.97)
    assert not worse.blessed and "worse than the served model's 0.8500" in worse.reason
    # Without a reference the share is not applied (and not recorded).
    plain = decide("accuracy", 0.10, None, threshold=0.0, max_drop=0.01)
    assert plain.blessed and plain.reference is None and plain.min_share is None

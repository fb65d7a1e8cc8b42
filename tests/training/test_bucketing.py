"""Length bucketing and dynamic padding in Task.batched_inputs (llm_tf/training/tasks.py)."""

import numpy as np

from llm_tf.training import configs, strategies, tasks, train_lib
from tests.training.conftest import FAST


def task_for(prepared, bucketing, override=""):
    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [], f"task.data.prepared_dir={prepared},{FAST},task.data.bucketing={bucketing},"
                                        f"task.data.bucket_boundaries=[8, 12]" + (f",{override}" if override else ""))
    return tasks.build_task(config)


def test_training_batches_are_cut_to_their_bucket_without_losing_tokens(prepared_sample):
    plain = task_for(prepared_sample, False)
    bucketed = task_for(prepared_sample, True)
    widths = set()
    for features, labels in bucketed.build_inputs("train", training=True).take(12):
        width = features["token_ids"].shape[1]
        widths.add(width)
        lengths = features["padding_mask"].numpy().sum(axis=1)
        assert features["token_ids"].shape[0] == 16 and labels.shape == (16,)
        assert lengths.max() <= width  # nothing cut off
        assert width == 32 or lengths.max() > {8: 0, 12: 8}[width]  # the smallest bucket that fits
    assert widths <= {8, 12, 32} and len(widths) > 1
    # The same examples reach training, only grouped differently: compare one epoch's token counts.
    plain_tokens = sum(int(f["padding_mask"].numpy().sum()) for f, _ in plain.build_inputs("eval", training=False))
    bucketed_tokens = sum(int(f["padding_mask"].numpy().sum())
                          for f, _ in bucketed.build_inputs("eval", training=False))
    assert plain_tokens == bucketed_tokens


def test_eval_predictions_do_not_change(tmp_path, prepared_sample):
    override = "trainer.train_steps=10,trainer.steps_per_loop=10"
    config = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                     f"task.data.prepared_dir={prepared_sample},{FAST},{override}")
    trainer = train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())
    plain = np.concatenate([trainer.model(f).numpy()
                            for f, _ in task_for(prepared_sample, False).build_inputs("eval", False)])
    cut = np.concatenate([trainer.model(f).numpy()
                          for f, _ in task_for(prepared_sample, True).build_inputs("eval", False)])
    np.testing.assert_allclose(cut, plain, rtol=1e-4, atol=1e-5)


def test_ner_labels_are_cut_with_the_inputs(tmp_path):
    from llm_tf.data.prepare import PrepareConfig, prepare
    from tests.training.test_token_classification import CONLL

    out = tmp_path / "conll"
    prepare(PrepareConfig(output_dir=str(out), inputs=[str(CONLL / "train.txt")], task="token_classification",
                          eval_percent=0, lower_case=False, vocab_size=120))
    config = configs.apply_overrides(tasks.experiment_config("token_classification"), [],
                                     f"task.data.prepared_dir={out},task.data.seq_length=32,task.data.global_batch_size=2,"
                                     "task.data.bucketing=true,task.data.bucket_boundaries=[16]")
    features, labels = next(iter(tasks.build_task(config).build_inputs("train", training=True)))
    assert labels.shape == features["token_ids"].shape and labels.shape[1] in (16, 32)


def test_resume_position_holds_with_bucketing(prepared_sample):
    task = task_for(prepared_sample, True)
    full = [f["token_ids"].numpy() for f, _ in task.build_inputs("train", training=True).take(6)]
    resumed = [f["token_ids"].numpy() for f, _ in task.build_inputs("train", training=True, skip_batches=4).take(2)]
    np.testing.assert_array_equal(full[4], resumed[0])
    np.testing.assert_array_equal(full[5], resumed[1])


def default_bucket_widths(prepared, override=""):
    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [], f"task.data.prepared_dir={prepared},{FAST},task.data.bucketing=true"
                                        + (f",{override}" if override else ""))
    batches = tasks.build_task(config).build_inputs("train", training=True).take(40)
    return {features["token_ids"].shape[1] for features, _ in batches}


def test_default_buckets_are_fine_unless_shapes_are_compiled(prepared_sample):
    fine = default_bucket_widths(prepared_sample)
    assert fine <= set(tasks.DEFAULT_BUCKETS) | {32} and fine - set(tasks.COMPILED_BUCKETS)
    compiled = default_bucket_widths(prepared_sample, "trainer.jit_compile=true")
    assert compiled <= set(tasks.COMPILED_BUCKETS) | {32}

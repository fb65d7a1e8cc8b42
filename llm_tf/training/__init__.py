"""Training: experiment configs, strategies, optimizers, tasks and the training loop."""

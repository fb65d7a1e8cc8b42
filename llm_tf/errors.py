"""Errors that llm-tf reports to users as one line, without a traceback.

Binaries catch :class:`LlmTfError`, print its message on one line and exit non-zero;
anything else is a bug and keeps its traceback.
"""


class LlmTfError(Exception):
    """Base class of every error whose message is meant for the user as is."""


class DataError(LlmTfError):
    """An input file or data set cannot be used (missing, empty, wrong format, missing column)."""


class BadRowError(DataError):
    """A row of an input file is invalid and the bad-row policy is ``fail``.

    Attributes:
        problem: The :class:`llm_tf.data.rows.RowProblem` that was found.
    """

    def __init__(self, problem, hint: str = ""):
        self.problem = problem
        message = problem.describe()
        if hint:
            message = f"{message} ({hint})"
        super().__init__(message)


class ConfigError(LlmTfError):
    """A flag, option or configuration value is invalid."""


class ValidationError(LlmTfError):
    """New data violates a schema (anomalies were found)."""

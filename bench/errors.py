"""User-facing errors: one line that names the file or value and the fix."""


class BenchError(Exception):
    """An error caused by the user's input or environment, printed as one line by the CLI (exit code 2)."""


class DataError(BenchError):
    """A dataset folder, split file or image is missing or malformed."""


class ConfigError(BenchError):
    """An unknown name or an invalid configuration value."""


class Preempted(BaseException):
    """A stop request (SIGTERM) ended a run after its state was saved; the same command resumes it.

    A ``BaseException`` like ``KeyboardInterrupt``: an interruption, never recorded as a failed run.
    """

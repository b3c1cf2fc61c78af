"""Exceptions raised for bad input; each message names the file, case or key at fault."""


class SSLBenchError(Exception):
    """Base class of every error this suite raises on purpose."""


class DataError(SSLBenchError, ValueError):
    """A dataset file, list or array is missing or malformed."""


class ConfigError(SSLBenchError, ValueError):
    """A configuration key or value is unknown or invalid."""


class CheckpointError(SSLBenchError, RuntimeError):
    """A checkpoint is missing, corrupt or belongs to another run."""


class StorageError(SSLBenchError, OSError):
    """A file could not be written (full disk, quota, permissions); the previous version is kept."""


class TrainingDiverged(SSLBenchError, RuntimeError):
    """A loss term became NaN or infinite; ``stage``, ``iteration`` and ``terms`` (the non-finite values) say where."""

    def __init__(self, message: str, stage: str = "", iteration: int = -1,
                 terms: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.iteration = iteration
        self.terms = dict(terms or {})

"""Errors that reach the user as one clear paragraph instead of a traceback."""


class ReprozooError(Exception):
    """Base class: the message names the bad value and what is allowed."""


class ConfigError(ReprozooError):
    """A configuration value is missing, of the wrong type, or not one of the allowed choices."""


class DatasetError(ReprozooError):
    """A dataset is missing or a data file is corrupt; the message names the file and the data card."""


class TrainingError(ReprozooError):
    """Training cannot go on (e.g. the loss diverged); the message says what to change."""

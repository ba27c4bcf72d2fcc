"""Exception types. Each message says what went wrong, where, and what to do."""


class VfmbenchError(Exception):
    """Base class for errors that the CLI prints without a traceback."""


class ConfigError(VfmbenchError, ValueError):
    """A configuration key or value is wrong."""


class UnknownNameError(VfmbenchError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class DatasetError(VfmbenchError):
    """A dataset on disk is missing, incomplete or corrupt."""


class DamagedFileError(VfmbenchError, ValueError):
    """A file of the project's own (a run's JSON, a cache's metadata) is not what it should be:
    cut short, overwritten or hand-edited into invalid JSON."""


class RenderingError(VfmbenchError):
    """No working headless OpenGL backend."""


class MissingDependencyError(VfmbenchError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class TrainingDivergedError(VfmbenchError):
    """A training loss became NaN or infinite."""


class ActionError(VfmbenchError, ValueError):
    """A task was given an action it cannot execute (wrong size, NaN or infinite values)."""


class NoExpertError(VfmbenchError, NotImplementedError):
    """A task without a scripted expert was asked for expert actions."""


class WeightsError(VfmbenchError):
    """Pretrained weights are missing or do not match their checksum."""


def unknown_name(kind: str, name: str, valid: list[str], plural: str | None = None) -> UnknownNameError:
    """An error for an unknown registry name that lists the valid ones."""
    return UnknownNameError(f"unknown {kind} {name!r}; valid {plural or kind + 's'}: {', '.join(valid)}")

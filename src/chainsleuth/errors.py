"""User-facing errors.

Every error a user can cause (bad input, unreachable node, wrong credentials,
corrupt file) is a :class:`ChainsleuthError`. The CLI prints these as one clear
message without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ChainsleuthError(Exception):
    """Base class for errors caused by input or environment, not by a bug."""

    exit_code = 2


class ConfigError(ChainsleuthError):
    """A setting, option or argument is invalid."""


class NodeError(ChainsleuthError):
    """A node answered with an error we cannot recover from."""


class NodeUnreachable(NodeError):
    """The node could not be reached after all retries."""


class NodeAuthError(NodeError):
    """The node refused our credentials."""


class BlockFileError(ChainsleuthError):
    """A raw block file is truncated, corrupt or of the wrong network."""


class InputFileError(ChainsleuthError):
    """A row of an input file is malformed. Carries the file and line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class StoreError(ChainsleuthError):
    """The ledger store cannot do what was asked (unknown chain, read-only, ...)."""

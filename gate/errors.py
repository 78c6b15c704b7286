"""Errors that prunegate reports to the user as one line and exit code 2."""


class InputError(Exception):
    """Bad input or usage: a missing file, a wrong format, an unknown profile, a model that fails to export.

    The message is one line that names the input and says how to fix it. The CLI prints it as
    ``error: <message>`` and exits with code 2, without a traceback.
    """

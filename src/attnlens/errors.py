"""The one exception type attnlens raises for bad input."""


class AttnlensError(ValueError):
    """Bad input or an unusable model/file: the message is one line meant for the user."""

"""User-facing errors: one clear line, shown by the CLI without a traceback."""


class PrunekitError(Exception):
    """A problem with the user's input or environment, phrased as one line.

    The message says what was wrong, what is valid, and what to do.
    """


def unknown_name(kind: str, name: str, valid) -> PrunekitError:
    valid = sorted(valid)
    return PrunekitError(
        f"unknown {kind} {name!r}; valid: {', '.join(valid) or '(none registered)'} (see `prunekit list`)"
    )


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]

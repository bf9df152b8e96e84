"""The one error type users see: a one-line message that names the file at fault."""


class Z4Error(Exception):
    """Bad input or a broken promise; its message is shown to the user as is, on one line."""

    def __init__(self, message: str, path: object | None = None, limit: int = 400):
        self.path = str(path) if path is not None else None
        text = f"{self.path}: {message}" if self.path else message
        text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
        super().__init__(text if len(text) <= limit else text[:limit - 3] + "...")

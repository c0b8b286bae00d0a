"""Versioned hand-off documents: the ``format`` field (``"<kind>/<N>"``) and the check a reader runs on it.

Every document one stage writes for another (a package's ``config.runner``, a checkpoint's metadata) carries
``format: "bmz-runner.<kind>/<N>"``. Adding an optional field keeps ``N`` (older readers ignore and keep
what they do not know); a change an older reader would misread (a renamed or re-typed field, a new required
one) bumps ``N``, and an older runner then refuses the document with one line instead of misreading it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class Contract(BaseModel):
    """Base of the hand-off models: unknown keys are kept (forward compatible), values are validated."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)


class NewerFormatError(ValueError):
    """A document written by a newer bmz-runner than this one."""


def format_number(value: str, kind: str) -> int:
    """``N`` of ``"<kind>/<N>"``; :class:`ValueError` for another kind or a malformed string."""
    head, _, number = str(value).rpartition("/")
    if head != kind or not number.isdigit():
        raise ValueError(f"format must be '{kind}/<N>', not {value!r}")
    return int(number)


class Versioned(Contract):
    """A contract with a ``format`` field checked against the newest version this runner reads."""

    KIND: ClassVar[str]
    VERSION: ClassVar[int]

    format: str = ""
    """``"<KIND>/<VERSION>"``; filled in when missing (documents written before the field existed)."""

    def model_post_init(self, context: object, /) -> None:
        if not self.format:
            self.format = self.current_format()

    @classmethod
    def current_format(cls) -> str:
        return f"{cls.KIND}/{cls.VERSION}"

    @field_validator("format")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if not value:
            return value
        number = format_number(value, cls.KIND)
        if number > cls.VERSION:
            raise NewerFormatError(
                f"written by a newer bmz-runner (format {value}; this one reads up to {cls.current_format()})"
            )
        return value


def describe_error(exc: ValidationError, where: str, *, fix: str) -> tuple[str, str]:
    """One-line message and hint for a contract that failed validation.

    Returns
    -------
    message, hint : e.g. ``("config.runner.halo: Input should be a valid list", fix)``; a document from a
        newer bmz-runner gets the hint to upgrade instead of ``fix``.
    """
    errors = exc.errors()
    for error in errors:  # a newer format explains every other error
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if "written by a newer bmz-runner" in msg:
            return f"{where} was {msg}", "upgrade bmz-runner to read it: pip install -U bmz-runner"
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", exc)).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}{'.' + loc if loc else ''}: {msg}{more}", fix

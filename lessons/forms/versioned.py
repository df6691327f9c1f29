"""The version an edit form was loaded at, shared by every form that edits a versioned
record (lessons, exercises): a save over someone else's newer save is caught instead of
silently undoing it, and a post that leaves the version out is refused rather than saved
unchecked."""

from __future__ import annotations

from werkzeug.exceptions import BadRequest
from wtforms import HiddenField

MISSING_VERSION = ("This edit did not say which version of the page it was made on, so it "
                   "could undo someone else's newer save. Nothing was saved: reload the "
                   "edit page and apply your change again.")


class VersionedForm:
    """Mixin for a ``FlaskForm``: the hidden ``version`` field and its reading."""

    version = HiddenField()

    def loaded_version(self) -> int | None:
        """``None`` when the form came without a usable version. Read from what was
        posted (``raw_data``): ``data`` falls back to the version loaded now."""
        value = (self.version.raw_data or [""])[0].strip()
        return int(value) if value.isdigit() else None

    def posted_version(self) -> int:
        """The version a submitted edit was made on; ``BadRequest`` without one."""
        loaded = self.loaded_version()
        if loaded is None:
            raise BadRequest(MISSING_VERSION)
        return loaded

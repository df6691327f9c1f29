"""The admin glossary forms. Format only: whether the terms make a valid group (count,
length, clashes with other groups) is the glossary service's to say."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from lessons.search.glossary import MAX_GROUP_TERMS, MAX_NOTE_LENGTH, MAX_TERM_LENGTH

# A valid group always fits: every term at full length on its own line ("\r\n" as browsers
# send it). Anything longer cannot be valid, so it is refused before it is parsed.
TERMS_TEXT_MAX = MAX_GROUP_TERMS * (MAX_TERM_LENGTH + 2)


class GlossaryGroupForm(FlaskForm):
    terms = TextAreaField(
        "Equivalent terms",
        description=f"One term or acronym per line, e.g. LNO, LO, liaison officer. A search "
                    f"for any of them finds lessons using the others. At least 2 and at most "
                    f"{MAX_GROUP_TERMS} terms of up to {MAX_TERM_LENGTH} characters; a term "
                    f"may belong to one group only. Case does not matter.",
        validators=[Length(max=TERMS_TEXT_MAX,
                           message=f"Too long: at most {MAX_GROUP_TERMS} terms of at most "
                                   f"{MAX_TERM_LENGTH} characters each.")],
        render_kw={"rows": 8, "spellcheck": "false"})
    note = TextAreaField(
        "Note", description="Why these terms are equivalent, and anything left out on purpose.",
        validators=[Length(max=MAX_NOTE_LENGTH,
                           message=f"At most {MAX_NOTE_LENGTH} characters.")],
        render_kw={"maxlength": MAX_NOTE_LENGTH, "rows": 3})

    def term_list(self) -> list[str]:
        """The terms as typed, one per line (the service cleans and checks them)."""
        return (self.terms.data or "").splitlines()


class ConfirmForm(FlaskForm):
    """A bare POST with its CSRF token: deleting or resetting after a confirmation page."""

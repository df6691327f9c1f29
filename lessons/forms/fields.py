"""Custom fields shared by forms."""

from __future__ import annotations

from wtforms import Field, SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget

from lessons.rules import normalise_codes


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice rendered as checkboxes (usable without JavaScript)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CodeListField(Field):
    """Nation or group codes from any number of inputs sharing one name.

    The template renders checkboxes for common partners plus a text box for other
    codes (``FRA, DEU``); all carry the contract key as their name, and this field
    merges them. Unknown codes are reported by the rules, not here.
    """

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = normalise_codes(",".join(valuelist))

    def _value(self) -> str:
        return ", ".join(self.data or [])


class PublicIdListField(Field):
    """Lesson public ids from any number of inputs sharing one name (ticked boxes):
    trimmed, blanks and repeats dropped. Whether each names a lesson the user may see
    is the service's check, not the form's."""

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = list(dict.fromkeys(v.strip() for v in valuelist if v and v.strip()))

    def _value(self) -> str:
        return ", ".join(self.data or [])

"""The admins' federation peer forms: registering a peer, and the bare confirmation that
removes one. Format and limits only: whether the name is free, the nations known, the
key an Ed25519 key and the address an http(s) one is ``federation.peers.add``'s to say
(the command line asks the same function)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, ValidationError
from wtforms.validators import InputRequired, Length

from lessons.federation.peers import URL_MAX
from lessons.forms.fields import CodeListField
from lessons.rules import NATIONS_MAX

NAME_MAX = 64  # identity.INSTANCE_NAME: 1 to 64 characters
KEY_MAX = 64  # a key is 44 base64 characters; room for stray spaces, no more
CODE_MAX = 10  # longer than any nation code: refused here, before it is looked up


def _too_long(limit: int) -> Length:
    return Length(max=limit, message=f"At most {limit} characters.")


class PeerForm(FlaskForm):
    name = StringField(
        "Instance name", validators=[InputRequired("Give the peer's instance name."),
                                     _too_long(NAME_MAX)],
        description="The peer's MUSTER_INSTANCE_NAME, exactly as its administrators set it, "
                    "e.g. AUS-army: bundles name their sender by it.",
        render_kw={"maxlength": NAME_MAX, "spellcheck": "false", "autocomplete": "off"})
    nations = CodeListField("Nations it serves")
    public_key = StringField(
        "Public key", validators=[InputRequired("Paste the peer's public key."),
                                  _too_long(KEY_MAX)],
        description="The 44 characters `flask federation key` prints on the peer (its "
                    "administrators give it to you). Bundles signed with any other key "
                    "are refused.",
        render_kw={"maxlength": KEY_MAX, "spellcheck": "false", "autocomplete": "off"})
    url = StringField(
        "Address (optional)", validators=[_too_long(URL_MAX)],
        description="The peer's http(s) address, e.g. https://muster.aus.example.",
        render_kw={"maxlength": URL_MAX, "spellcheck": "false", "autocomplete": "off",
                   "type": "url"})

    def validate_nations(self, field: CodeListField) -> None:
        codes = field.data or []
        if not codes:
            raise ValidationError("Tick or type at least one nation the peer serves.")
        if len(codes) > NATIONS_MAX:
            raise ValidationError(f"At most {NATIONS_MAX} nations.")
        if any(len(code) > CODE_MAX for code in codes):
            raise ValidationError("Nation codes are three letters, e.g. AUS, NZL.")


class RemovePeerForm(FlaskForm):
    """The confirmation page's POST: the peer's name and the CSRF token."""

    name = HiddenField(validators=[InputRequired(), _too_long(NAME_MAX)])

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation

from clusterweb.accounts import ssh_keys as sshkeys
from clusterweb.accounts.addresses import AddressRefused, address_folded
from clusterweb.accounts.models import User


class LoginForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


# --- Signup ---------------------------------------------------------------------------------------
DEFAULT_UID_PATTERN = "[a-z_][a-z0-9_-]{0,31}"
# Characters with a meaning in LDAP filters or DNs. Names never go into either (they are attribute
# values, escaped by python-ldap), but nobody's name needs them, so they are refused outright.
LDAP_METACHARACTERS = set('*()\\,=+<>;"#\x00/')
# Scripts that one written word may legitimately mix (Japanese).
_SCRIPT_FAMILIES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK"}


def uid_pattern() -> re.Pattern[str]:
    """The directory's uid pattern (``DIRECTORY_UID_PATTERN``): the one rule for signup names
    and login names (issue 13: one identity per person)."""
    return _compiled(settings.DIRECTORY_UID_PATTERN)


@functools.lru_cache(maxsize=4)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be chosen, judged without the directory; None when it may be."""
    if not uid_pattern().fullmatch(username):
        if settings.DIRECTORY_UID_PATTERN != DEFAULT_UID_PATTERN:
            return (
                f"Use a name that matches the directory's pattern {settings.DIRECTORY_UID_PATTERN}."
            )
        return (
            "Use 1 to 32 characters: lowercase letters a-z, digits, '_' and '-', starting with a "
            "letter or '_'."
        )
    if username in {name.lower() for name in settings.SIGNUP_RESERVED_USERNAMES}:
        return f"'{username}' is reserved for the system. Choose another name."
    return None


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "UNKNOWN")
    first = name.split()[0]
    return _SCRIPT_FAMILIES.get(first, first)


def full_name_problem(name: str) -> str | None:
    """Letters of any script, spaces, apostrophes, hyphens and periods; each word in one script,
    so a look-alike letter from another alphabet (a Cyrillic 'а' in 'Аlice') is refused, and
    unchanged by NFKC, so a styled one ('𝐀lice', 'Ａlice') is refused too."""
    if not name:
        return "Enter your name."
    for ch in name:
        if ch in LDAP_METACHARACTERS:
            return f"Your name cannot contain {ch!r}."
        category = unicodedata.category(ch)
        if not (category[0] in "LM" or ch in " '’-."):
            return "Use letters, spaces, apostrophes, hyphens and periods only."
    for word in name.split():
        # Full-width, mathematical, circled and other styled letters (and ligatures, the long s)
        # look like plain ones but are other characters: NFKC turns them into the plain letters.
        if unicodedata.normalize("NFKC", word) != word:
            return (
                f"'{word}' uses styled or compatibility letters (full-width, mathematical, "
                "circled, ligatures). Type it in plain letters."
            )
        scripts = {_script(ch) for ch in word if unicodedata.category(ch)[0] == "L"}
        if len(scripts) > 1:
            return (
                f"'{word}' mixes letters of different alphabets ({', '.join(sorted(scripts))}). "
                "Type it in one alphabet."
            )
    return None


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    days = forms.IntegerField(
        min_value=1,
        max_value=30,
        required=False,
        help_text="How long the link stays valid (default: the SIGNUP_INVITATION_HOURS setting).",
    )


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False, widget=forms.Textarea({"rows": 2}))


class SignupForm(forms.Form):
    """The signup site's form. Everything is checked here except what needs the directory or
    other signups (``services.signup_submit`` checks those)."""

    username = forms.CharField(
        max_length=32,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}
        ),
        help_text="Your login on the cluster: lowercase letters, digits, '_' and '-'.",
    )
    full_name = forms.CharField(
        max_length=100, strip=True, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    email = forms.EmailField(disabled=True, required=False)
    password = forms.CharField(
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=f"At least {settings.SIGNUP_PASSWORD_MIN_LENGTH} characters.",
    )
    password_again = forms.CharField(
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    ssh_keys = forms.CharField(
        label="SSH public keys",
        max_length=sshkeys.MAX_KEYS * sshkeys.MAX_LINE,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One per line, e.g. ~/.ssh/id_ed25519.pub (never the private key).",
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        problem = username_problem(username)
        if problem:
            raise forms.ValidationError(problem)
        return username

    def clean_full_name(self) -> str:
        name = " ".join(unicodedata.normalize("NFC", self.cleaned_data["full_name"]).split())
        problem = full_name_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean_ssh_keys(self) -> list[sshkeys.PublicKey]:
        text = self.cleaned_data["ssh_keys"]
        try:
            return sshkeys.parse_keys(text)
        except sshkeys.SSHKeyRefused as exc:
            if sshkeys.looks_private(text):
                # Never echo a private key back into the page.
                self.data = self.data.copy()
                self.data["ssh_keys"] = ""
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password = cleaned.get("password")
        if password and password != cleaned.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        elif password:
            name = cleaned.get("full_name", "")
            # An unsaved user, so the similarity validator compares with what the form holds.
            person = User(
                username=cleaned.get("username", ""),
                first_name=name,
                email=self.initial.get("email", ""),
            )
            try:
                password_validation.validate_password(password, person)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


# --- Profile, password reset and the admins' account actions --------------------------------------
FINGERPRINT_PATTERN = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def _keys_field() -> forms.CharField:
    # max_length is checked before clean_ssh_keys runs: an oversized paste never reaches the
    # parser (and a request body over DATA_UPLOAD_MAX_MEMORY_SIZE never reaches the form).
    return forms.CharField(
        label="SSH public keys",
        max_length=sshkeys.MAX_KEYS * sshkeys.MAX_LINE,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="One per line, e.g. ~/.ssh/id_ed25519.pub (never the private key).",
    )


def _password_field(autocomplete: str) -> forms.CharField:
    return forms.CharField(
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


def _new_password_check(
    form: forms.Form, cleaned: dict[str, Any], field: str, again: str, person: Any
) -> None:
    """The two copies match and Django's validators accept the password for ``person`` (an
    unsaved or real User: the similarity validator compares with its name and address)."""
    password = cleaned.get(field)
    if password and password != cleaned.get(again):
        form.add_error(again, "The two passwords differ.")
    elif password:
        try:
            password_validation.validate_password(password, person)
        except forms.ValidationError as exc:
            form.add_error(field, exc)


class PasswordChangeForm(forms.Form):
    """The profile page's password change; the old password is checked by the directory."""

    old_password = _password_field("current-password")
    new_password = _password_field("new-password")
    new_password_again = _password_field("new-password")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["new_password"].help_text = (
            f"At least {settings.SIGNUP_PASSWORD_MIN_LENGTH} characters. The same password for "
            "SSH, JupyterHub and the dashboard."
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("new_password") and cleaned.get("new_password") == cleaned.get(
            "old_password"
        ):
            self.add_error("new_password", "The new password is the old one.")
            return cleaned
        _new_password_check(self, cleaned, "new_password", "new_password_again", self.user)
        return cleaned


class SSHKeysAddForm(forms.Form):
    ssh_keys = _keys_field()

    def clean_ssh_keys(self) -> list[sshkeys.PublicKey]:
        text = self.cleaned_data["ssh_keys"]
        try:
            return sshkeys.parse_keys(text)
        except sshkeys.SSHKeyRefused as exc:
            if sshkeys.looks_private(text):
                self.data = self.data.copy()
                self.data["ssh_keys"] = ""  # never echo a private key back into the page
            raise forms.ValidationError(str(exc)) from None


class SSHKeyRemoveForm(forms.Form):
    fingerprint = forms.CharField(max_length=60)

    def clean_fingerprint(self) -> str:
        value = self.cleaned_data["fingerprint"]
        if not FINGERPRINT_PATTERN.fullmatch(value):
            raise forms.ValidationError("This is not an SSH key fingerprint (SHA256:...).")
        return value


class PasswordResetForm(forms.Form):
    """The signup site's form behind a reset link."""

    password = _password_field("new-password")
    password_again = _password_field("new-password")

    def __init__(self, *args: Any, person: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.person = person
        self.fields[
            "password"
        ].help_text = f"At least {settings.SIGNUP_PASSWORD_MIN_LENGTH} characters."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        _new_password_check(self, cleaned, "password", "password_again", self.person)
        return cleaned


class FoldedEmailField(forms.EmailField):
    """An address brought to one spelling (``addresses.address_folded``: NFKC, case folding, an
    ASCII local part) before it is validated, so every look-alike of an address is that
    address, and one that could only match by a database's own case folding is refused."""

    def to_python(self, value: Any) -> str:
        value = super().to_python(value)
        if not value:
            return value
        try:
            return address_folded(value)
        except AddressRefused as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class ResetRequestForm(forms.Form):
    email = FoldedEmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


class AccountActionForm(forms.Form):
    """The confirmation of an admin's action on an account (a reason only for disabling)."""

    reason = forms.CharField(max_length=500, required=False, strip=True)

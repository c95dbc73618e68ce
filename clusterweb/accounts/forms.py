from __future__ import annotations

import re
import unicodedata
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation

from clusterweb.accounts import ssh_keys as sshkeys
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
USERNAME_PATTERN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Characters with a meaning in LDAP filters or DNs. Names never go into either (they are attribute
# values, escaped by python-ldap), but nobody's name needs them, so they are refused outright.
LDAP_METACHARACTERS = set('*()\\,=+<>;"#\x00/')
# Scripts that one written word may legitimately mix (Japanese).
_SCRIPT_FAMILIES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK"}


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be chosen, judged without the directory; None when it may be."""
    if not USERNAME_PATTERN.fullmatch(username):
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
    so a look-alike letter from another alphabet (a Cyrillic 'а' in 'Аlice') is refused."""
    if not name:
        return "Enter your name."
    for ch in name:
        if ch in LDAP_METACHARACTERS:
            return f"Your name cannot contain {ch!r}."
        category = unicodedata.category(ch)
        if not (category[0] in "LM" or ch in " '’-."):
            return "Use letters, spaces, apostrophes, hyphens and periods only."
    for word in name.split():
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

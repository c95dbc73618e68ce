"""SSH public keys as a signup pastes them: parsed with ``cryptography``, checked against the
cluster's rules, normalised to one ``type base64 comment`` line each, and fingerprinted the way
``ssh-keygen -l`` prints it (``SHA256:...``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from django.conf import settings

# Key types the bastion's sshd accepts from collaborators. DSA and anything unknown are refused.
ALLOWED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
MAX_KEYS = 10
MAX_LINE = 16 * 1024  # an RSA 16384-bit key is about 2.8 kB; nothing legitimate comes close
PRIVATE_KEY_MESSAGE = (
    "This is a private key. Never share it with anyone, not even the cluster's admin: paste the "
    "public key instead (the .pub file, e.g. ~/.ssh/id_ed25519.pub). Since the private key left "
    "your machine, consider making a new key pair."
)
_PRIVATE_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "BEGIN SSH2 ENCRYPTED")
# A comment is shown back and stored in the directory: printable ASCII, no control characters.
_COMMENT = re.compile(r"[\x20-\x7e]{0,200}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class SSHKeyRefused(ValueError):
    """A key the cluster refuses; the message says why, in words for the person who pasted it."""


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    comment: str
    bits: int

    @property
    def line(self) -> str:
        body = f"{self.type} {base64.b64encode(self.blob).decode()}"
        return f"{body} {self.comment}" if self.comment else body

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.blob)


def _fingerprint(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fingerprint(line: str) -> str:
    """The SHA256 fingerprint of a stored key line."""
    try:
        return _fingerprint(base64.b64decode(line.split()[1], validate=True))
    except (IndexError, binascii.Error, ValueError):
        return "(unreadable key)"


def looks_private(text: str) -> bool:
    return any(marker in text for marker in _PRIVATE_MARKERS)


def parse_key(line: str) -> PublicKey:
    """Parse one public key line (``type base64 [comment]``), or raise ``SSHKeyRefused``."""
    if looks_private(line):
        raise SSHKeyRefused(PRIVATE_KEY_MESSAGE)
    if len(line) > MAX_LINE:
        raise SSHKeyRefused("This key is far too long to be an SSH public key.")
    if "\x00" in line or any(ord(ch) > 0x7E or (ord(ch) < 0x20 and ch != "\t") for ch in line):
        raise SSHKeyRefused("A key is plain ASCII text: this one holds other characters.")
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise SSHKeyRefused(
            "This is not an SSH public key: expected a line like 'ssh-ed25519 AAAA... you@host'."
        )
    key_type, data, comment = parts[0], parts[1], (parts[2].strip() if len(parts) > 2 else "")
    if key_type not in ALLOWED_TYPES:
        if key_type in ("ssh-dss", "ssh-dsa"):
            raise SSHKeyRefused("DSA keys are no longer accepted: make an ed25519 key instead.")
        raise SSHKeyRefused(
            f"Key type {key_type[:40]!r} is not accepted; use ed25519 (ssh-keygen -t ed25519), "
            "ECDSA, RSA of at least "
            f"{settings.SIGNUP_SSH_RSA_MIN_BITS} bits, or a security key (ed25519-sk, ecdsa-sk)."
        )
    if not _BASE64.fullmatch(data):
        raise SSHKeyRefused(
            "The key's data is damaged (it is not base64): copy the whole line again."
        )
    if not _COMMENT.fullmatch(comment):
        raise SSHKeyRefused(
            "The key's comment is too long or holds characters other than plain text."
        )
    try:
        blob = base64.b64decode(data, validate=True)
        # cryptography checks that the type named in front matches the one inside the blob, and
        # that the numbers are a valid key (a point on the curve, a sane RSA modulus).
        key = load_ssh_public_key(f"{key_type} {data}".encode())
    except (binascii.Error, ValueError) as exc:
        raise SSHKeyRefused(
            "The key's data is damaged or incomplete: copy the whole line again."
        ) from exc
    except Exception as exc:  # an unsupported algorithm inside an allowed name
        raise SSHKeyRefused("This key could not be read as an SSH public key.") from exc
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < settings.SIGNUP_SSH_RSA_MIN_BITS:
            raise SSHKeyRefused(
                f"This RSA key has {bits} bits; the cluster needs at least "
                f"{settings.SIGNUP_SSH_RSA_MIN_BITS}. Better: make an ed25519 key "
                "(ssh-keygen -t ed25519)."
            )
    elif isinstance(key, ed25519.Ed25519PublicKey):
        bits = 256
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
    else:
        raise SSHKeyRefused("This kind of key is not accepted.")
    return PublicKey(key_type, blob, comment, bits)


def parse_keys(text: str) -> list[PublicKey]:
    """Every key in ``text`` (one per line; blank lines and ``#`` lines skipped). Raises
    ``SSHKeyRefused`` naming the line of the first bad key; a pasted private key anywhere refuses
    the whole text, so none of it is echoed back."""
    if looks_private(text):
        raise SSHKeyRefused(PRIVATE_KEY_MESSAGE)
    keys: list[PublicKey] = []
    seen: set[bytes] = set()
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
    numbered = [(n, ln) for n, ln in enumerate(lines, 1) if ln and not ln.startswith("#")]
    if not numbered:
        raise SSHKeyRefused("Give at least one SSH public key.")
    if len(numbered) > MAX_KEYS:
        raise SSHKeyRefused(f"At most {MAX_KEYS} keys, please.")
    for number, line in numbered:
        try:
            key = parse_key(line)
        except SSHKeyRefused as exc:
            prefix = f"Line {number}: " if len(numbered) > 1 else ""
            raise SSHKeyRefused(f"{prefix}{exc}") from None
        if key.blob not in seen:
            seen.add(key.blob)
            keys.append(key)
    return keys

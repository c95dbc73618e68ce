"""SSH public keys as a newcomer pastes them: parsed with `cryptography`, fingerprinted exactly as
`ssh-keygen -l` prints them."""

import base64
import shutil
import struct
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from clusterweb.accounts.ssh_keys import SSHKeyRefused, parse_key, parse_keys
from tests.fixtures.signup import public_key


def wire(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def security_key(kind: str) -> str:
    if kind == "ed25519":
        raw = (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        name = b"sk-ssh-ed25519@openssh.com"
        blob = wire(name, raw, b"ssh:")
    else:
        point = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
        name = b"sk-ecdsa-sha2-nistp256@openssh.com"
        blob = wire(name, b"nistp256", point, b"ssh:")
    return f"{name.decode()} {base64.b64encode(blob).decode()} yubikey"


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_it_accepts_ed25519_ecdsa_and_rsa_keys_and_fingerprints_them_like_ssh_keygen(
    kind, tmp_path
):
    line = public_key(kind, comment="dave@laptop")
    key = parse_key(line)
    assert key.line == line
    if shutil.which("ssh-keygen"):
        path = tmp_path / "key.pub"
        path.write_text(line + "\n")
        printed = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert printed.split()[1] == key.fingerprint
    assert key.fingerprint.startswith("SHA256:")


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_it_accepts_security_keys(kind):
    line = security_key(kind)
    key = parse_key(line)
    assert key.type.startswith("sk-")
    assert key.comment == "yubikey"


def test_it_refuses_rsa_keys_under_3072_bits():
    with pytest.raises(SSHKeyRefused, match=r"2048 bits.*at least 3072"):
        parse_key(public_key("rsa", bits=2048))
    assert parse_key(public_key("rsa", bits=3072)).bits == 3072


@pytest.mark.parametrize(
    "private",
    [
        lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
        ),
        lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
        ),
    ],
    ids=["openssh", "pkcs8", "pem-rsa"],
)
def test_it_refuses_a_pasted_private_key_with_a_warning_never_to_share_it(private):
    text = public_key() + "\n" + private().decode()
    with pytest.raises(SSHKeyRefused, match=r"private key\. Never share it"):
        parse_keys(text)


def test_it_refuses_dsa_and_unknown_key_types():
    dss = base64.b64encode(wire(b"ssh-dss", b"\x00\xc1" * 64, b"\x00\xd3" * 10)).decode()
    with pytest.raises(SSHKeyRefused, match="DSA keys are no longer accepted"):
        parse_key(f"ssh-dss {dss} old@box")
    with pytest.raises(SSHKeyRefused, match="not accepted"):
        parse_key("ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQ")


def test_it_refuses_damaged_truncated_or_mislabelled_keys():
    line = public_key(comment="")
    kind, data = line.split()
    for bad in (f"{kind} {data[:-8]}", f"{kind} {data}!!", f"ssh-rsa {data}", kind, "hello"):
        with pytest.raises(SSHKeyRefused):
            parse_key(bad)


@pytest.mark.parametrize("comment", ["dave\x00", "dаve@laptop", "x" * 300, "dave\x1b[31m"])
def test_it_refuses_control_characters_and_non_ascii_in_a_key(comment):
    with pytest.raises(SSHKeyRefused):
        parse_key(public_key(comment=comment))


def test_it_reads_several_keys_one_per_line_skipping_blanks_comments_and_duplicates():
    first, second = public_key(), public_key("ecdsa")
    keys = parse_keys(f"\n# laptop\n{first}\r\n\n{second}\n{first}\n")
    assert [k.line for k in keys] == [first, second]


def test_it_names_the_line_of_a_bad_key_and_needs_at_least_one():
    with pytest.raises(SSHKeyRefused, match=r"^Line 2: "):
        parse_keys(public_key() + "\nnot a key")
    with pytest.raises(SSHKeyRefused, match="at least one"):
        parse_keys("  \n# only a comment\n")

"""A signing key pair made inside a PKCS#11 token (`z4 keygen --pkcs11`): only the public key leaves it.

The private key is created with CKA_TOKEN (kept), CKA_SENSITIVE and CKA_PRIVATE true and
CKA_EXTRACTABLE false: the token refuses to export it, wrapped or not. Works with any PKCS#11
module: SoftHSM2 in tests, the bank's HSM in production (the same URI, another module-path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from z4_assets.core.errors import Z4Error

P256_OID_DER = bytes.fromhex("06082a8648ce3d030107")  # prime256v1, as CKA_EC_PARAMS


@dataclass(frozen=True)
class TokenKey:
    """What a PKCS#11 URI names: the module, the token's label and the key's label (object)."""

    module: str
    token: str
    label: str

    @classmethod
    def from_uri(cls, uri: str) -> TokenKey:
        if not uri.startswith("pkcs11:"):
            raise Z4Error("not a PKCS#11 URI (pkcs11:token=...;object=...?module-path=...)")
        path, _, query = uri[len("pkcs11:"):].partition("?")
        attrs = dict(p.split("=", 1) for p in path.split(";") if "=" in p)
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        module, token, label = (unquote(x) for x in (params.get("module-path", ""), attrs.get("token", ""),
                                                       attrs.get("object", "")))
        if not (module and token and label):
            raise Z4Error("the PKCS#11 URI must name token=, object= and ?module-path=")
        return cls(module, token, label)


def _session(key: TokenKey, pin: str | None):
    import PyKCS11

    lib = PyKCS11.PyKCS11Lib()
    try:
        lib.load(key.module)
        slots = [s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == key.token]
    except PyKCS11.PyKCS11Error as e:
        raise Z4Error(f"cannot open the PKCS#11 module ({e.__class__.__name__})", key.module) from None
    if not slots:
        raise Z4Error(f"no PKCS#11 token labelled {key.token!r}", key.module)
    session = lib.openSession(slots[0], PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    if pin is not None:
        try:
            session.login(pin)
        except PyKCS11.PyKCS11Error:
            raise Z4Error(f"PKCS#11 login to token {key.token!r} refused (wrong PIN?)") from None
    return lib, session


def _find(session, cls, label: str):
    import PyKCS11

    return session.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, label)])


def _pem(session, public) -> bytes:
    import PyKCS11
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = bytes(session.getAttributeValue(public, [PyKCS11.CKA_EC_POINT])[0])
    if point[:1] == b"\x04" and len(point) == 67 and point[1] == 0x41:  # DER OCTET STRING around the point
        point = point[2:]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def token_keygen(uri: str, pin: str) -> bytes:
    """Create an EC P-256 key pair in the token the URI names; returns the public key's PEM.
    Refuses when a key with that label is already there (a signing key is never replaced)."""
    import PyKCS11

    key = TokenKey.from_uri(uri)
    _, session = _session(key, pin)
    try:
        if _find(session, PyKCS11.CKO_PRIVATE_KEY, key.label) or _find(session, PyKCS11.CKO_PUBLIC_KEY, key.label):
            raise Z4Error(f"refusing to overwrite: token {key.token!r} already holds a key labelled {key.label!r}")
        common = [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC), (PyKCS11.CKA_TOKEN, True),
                  (PyKCS11.CKA_LABEL, key.label)]
        public = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_VERIFY, True),
                  (PyKCS11.CKA_EC_PARAMS, P256_OID_DER), *common]
        private = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_SIGN, True),
                   (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, False),
                   *common]
        pub, _ = session.generateKeyPair(public, private, mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
        return _pem(session, pub)
    finally:
        session.logout()
        session.closeSession()


def token_public_key(uri: str) -> bytes:
    """The public key (PEM) of the key pair the URI names; no PIN needed."""
    import PyKCS11

    key = TokenKey.from_uri(uri)
    _, session = _session(key, None)
    try:
        found = _find(session, PyKCS11.CKO_PUBLIC_KEY, key.label)
        if not found:
            raise Z4Error(f"token {key.token!r} holds no public key labelled {key.label!r}")
        return _pem(session, found[0])
    finally:
        session.closeSession()


def private_key_attributes(uri: str, pin: str) -> dict:
    """CKA_EXTRACTABLE, CKA_SENSITIVE and whether CKA_VALUE (the key's bytes) can be read: the proof
    that the private key cannot leave the token."""
    import PyKCS11

    key = TokenKey.from_uri(uri)
    _, session = _session(key, pin)
    try:
        (priv,) = _find(session, PyKCS11.CKO_PRIVATE_KEY, key.label)
        extractable, sensitive = session.getAttributeValue(priv, [PyKCS11.CKA_EXTRACTABLE, PyKCS11.CKA_SENSITIVE])
        try:
            (value,) = session.getAttributeValue(priv, [PyKCS11.CKA_VALUE])
        except PyKCS11.PyKCS11Error:
            value = None
        return {"extractable": bool(extractable), "sensitive": bool(sensitive), "value_readable": value is not None}
    finally:
        session.logout()
        session.closeSession()


@dataclass(frozen=True)
class TokenSigner:
    """A raw ECDSA P-256/SHA-256 signer inside the token (for statements that are not model-signing
    bundles, e.g. Z3 manifests). The PIN never appears in a repr."""

    uri: str
    pin: str = field(default="", repr=False)

    def public_key(self):
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_public_key(token_public_key(self.uri))

    def sign(self, data: bytes) -> bytes:
        """A DER ECDSA signature of DATA's SHA-256 digest, made inside the token."""
        import hashlib

        import PyKCS11
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        key = TokenKey.from_uri(self.uri)
        _, session = _session(key, self.pin)
        try:
            found = _find(session, PyKCS11.CKO_PRIVATE_KEY, key.label)
            if not found:
                raise Z4Error(f"token {key.token!r} holds no private key labelled {key.label!r}")
            # CKM_ECDSA over the SHA-256 digest: every token has it (SoftHSM2 lacks CKM_ECDSA_SHA256)
            raw = bytes(session.sign(found[0], hashlib.sha256(data).digest(),
                                     PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)))
        finally:
            session.logout()
            session.closeSession()
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def write_public_key(pem: bytes, out: str | Path) -> Path:
    from z4_assets.core.files import atomic_write_bytes

    return atomic_write_bytes(Path(out), pem, mode=0o644)

"""The signing modes the factory knows: the packaging stage signs with one (core/packaging/_keys.py),
the release policy may require some (core/policy.py, release.require_signing)."""

SIGNING_MODES = ("ec_key", "sigstore", "pkcs11", "certificate")

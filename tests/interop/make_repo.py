"""Builds a TUF repository with python-tuf's Metadata API, for tuf-client to read.

Usage: make_repo.py OUTDIR
Writes OUTDIR/metadata/{1.root.json, 1.targets.json, 1.apps.json, 1.snapshot.json,
timestamp.json} and OUTDIR/targets/... with consistent snapshots. Keys: ed25519 (root,
timestamp), ECDSA P-256 (snapshot, targets), RSA-PSS (the delegated role "apps", trusted
for "apps/*", terminating). Prints one JSON line: the targets and their contents' sha256.
"""
import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

out = sys.argv[1]
os.makedirs(os.path.join(out, "metadata"), exist_ok=True)
expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)

signers = {
    "root": CryptoSigner.generate_ed25519(),
    "timestamp": CryptoSigner.generate_ed25519(),
    "snapshot": CryptoSigner.generate_ecdsa(),
    "targets": CryptoSigner.generate_ecdsa(),
    "apps": CryptoSigner.generate_rsa(),
}

root = Metadata(Root(expires=expires, consistent_snapshot=True))
for role in ["root", "timestamp", "snapshot", "targets"]:
    root.signed.add_key(signers[role].public_key, role)

files = {
    "files/hello.txt": b"hello from python-tuf\n",
    "apps/app.bin": os.urandom(3000),
}


def write_target(name, data, algorithms):
    directory, base = os.path.split(name)
    os.makedirs(os.path.join(out, "targets", directory), exist_ok=True)
    for algorithm in algorithms:
        digest = hashlib.new(algorithm, data).hexdigest()
        with open(os.path.join(out, "targets", directory, f"{digest}.{base}"), "wb") as f:
            f.write(data)
    return TargetFile.from_data(name, data, algorithms)


targets = Metadata(Targets(expires=expires))
targets.signed.targets["files/hello.txt"] = write_target("files/hello.txt", files["files/hello.txt"], ["sha256"])
apps_key = signers["apps"].public_key
targets.signed.delegations = Delegations(
    keys={apps_key.keyid: apps_key},
    roles={
        "apps": DelegatedRole(
            name="apps", keyids=[apps_key.keyid], threshold=1, terminating=True, paths=["apps/*"]
        )
    },
)
apps = Metadata(Targets(expires=expires))
apps.signed.targets["apps/app.bin"] = write_target("apps/app.bin", files["apps/app.bin"], ["sha256", "sha512"])

snapshot = Metadata(Snapshot(expires=expires))
snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
snapshot.signed.meta["apps.json"] = MetaFile(version=apps.signed.version)
timestamp = Metadata(Timestamp(expires=expires))
timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)

root.sign(signers["root"])
targets.sign(signers["targets"])
apps.sign(signers["apps"])
snapshot.sign(signers["snapshot"])
timestamp.sign(signers["timestamp"])

serializer = JSONSerializer(compact=False)
for name, md in [
    ("1.root.json", root),
    ("1.targets.json", targets),
    ("1.apps.json", apps),
    ("1.snapshot.json", snapshot),
    ("timestamp.json", timestamp),
]:
    md.to_file(os.path.join(out, "metadata", name), serializer)

print(json.dumps({name: hashlib.sha256(data).hexdigest() for name, data in files.items()}))

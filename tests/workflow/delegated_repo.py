"""Builds two states of a TUF repository with a delegated role named `../delegatedrole`.

Usage: delegated_repo.py OUTDIR
Writes OUTDIR/v1 and OUTDIR/v2, each with metadata/ and targets/ (consistent snapshots):
- v1: targets (version 1) delegates every path to `../delegatedrole` with key A; the
  delegated role (version 1, signed by A) lists `file.txt`. Its metadata file is
  `1.<quote(name, '')>.json`, as python-tuf's repository and clients name it.
- v2: the delegator rotates the delegated role's key: targets version 2 lists only key B
  for `../delegatedrole`; the delegated role itself is unchanged (version 1, signed by A).
Spec 5.6.7.2: a client must verify the delegated role against its current delegator, so
in v2 the copy signed by A is refused.
"""
import hashlib
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

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
name = "../delegatedrole"
quoted = quote(name, "")
expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
signers = {role: CryptoSigner.generate_ed25519() for role in ["root", "timestamp", "snapshot", "targets", "A", "B"]}
serializer = JSONSerializer(compact=False)


def write(state, filename, md):
    md.to_file(os.path.join(out, state, "metadata", filename), serializer)


def delegating(version, key):
    targets = Metadata(Targets(version=version, expires=expires))
    public = signers[key].public_key
    targets.signed.delegations = Delegations(
        keys={public.keyid: public},
        roles={name: DelegatedRole(name=name, keyids=[public.keyid], threshold=1, terminating=True, paths=["*"])},
    )
    targets.sign(signers["targets"])
    return targets


def top(state, version, targets):
    snapshot = Metadata(Snapshot(version=version, expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    snapshot.signed.meta[f"{name}.json"] = MetaFile(version=1)
    snapshot.sign(signers["snapshot"])
    timestamp = Metadata(Timestamp(version=version, expires=expires))
    timestamp.signed.snapshot_meta = MetaFile(version=version)
    timestamp.sign(signers["timestamp"])
    write(state, f"{targets.signed.version}.targets.json", targets)
    write(state, f"{version}.snapshot.json", snapshot)
    write(state, "timestamp.json", timestamp)


for state in ["v1", "v2"]:
    os.makedirs(os.path.join(out, state, "metadata"), exist_ok=True)
    os.makedirs(os.path.join(out, state, "targets"), exist_ok=True)

root = Metadata(Root(expires=expires, consistent_snapshot=True))
for role in ["root", "timestamp", "snapshot", "targets"]:
    root.signed.add_key(signers[role].public_key, role)
root.sign(signers["root"])

data = b"delegated file\n"
delegated = Metadata(Targets(version=1, expires=expires))
delegated.signed.targets["file.txt"] = TargetFile.from_data("file.txt", data, ["sha256"])
delegated.sign(signers["A"])
digest = hashlib.sha256(data).hexdigest()

for state, version, key in [("v1", 1, "A"), ("v2", 2, "B")]:
    write(state, "1.root.json", root)
    write(state, f"1.{quoted}.json", delegated)
    with open(os.path.join(out, state, "targets", f"{digest}.file.txt"), "wb") as f:
        f.write(data)
    top(state, version, delegating(version, key))

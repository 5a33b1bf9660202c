"""Refreshes a repository with python-tuf's ngclient and downloads one target.

Usage: ngclient_download.py METADATA_URL TARGETS_URL TRUSTED_ROOT WORKDIR TARGET_NAME
Prints one JSON line: the target's length, sha256 and the downloaded file's sha256.
"""
import hashlib
import json
import os
import shutil
import sys

from tuf.ngclient import Updater

metadata_url, targets_url, trusted_root, workdir, target_name = sys.argv[1:6]
metadata_dir = os.path.join(workdir, "metadata")
target_dir = os.path.join(workdir, "targets")
os.makedirs(metadata_dir, exist_ok=True)
os.makedirs(target_dir, exist_ok=True)
shutil.copy(trusted_root, os.path.join(metadata_dir, "root.json"))
with open(trusted_root, "rb") as f:
    bootstrap = f.read()

updater = Updater(
    bootstrap=bootstrap,
    metadata_dir=metadata_dir,
    metadata_base_url=metadata_url,
    target_base_url=targets_url,
    target_dir=target_dir,
)
updater.refresh()
info = updater.get_targetinfo(target_name)
if info is None:
    sys.exit(f"target {target_name} not found")
path = updater.download_target(info)
with open(path, "rb") as f:
    data = f.read()
print(json.dumps({
    "length": info.length,
    "sha256": info.hashes.get("sha256"),
    "downloaded_sha256": hashlib.sha256(data).hexdigest(),
    "custom": info.unrecognized_fields.get("custom"),
}))

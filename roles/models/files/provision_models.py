#!/usr/bin/env python3
"""provision's model placement helper (standard library only; runs on the nodes and on the
controller). Installed by the `models` role; see docs/models.md.

Node layout under a deployment's model_dir:
    <files of the manifest>            verified, owned by the service user, renamed into place
    model.gguf -> <first .gguf>        GGUF models only
    .provision/manifest.json           the bundle's manifest (root, 0600 dir)
    .provision/stamps.json             per file: size, mtime_ns, inode, sha256 at verification
    .provision/partial/<path>          resumable transfers (rsync --inplace --append-verify)

Commands (each prints one JSON object):
    status   --dir D [--rehash]                 which files are verified, bytes missing, free space
    pull     --dir D --upstream ... | --hub ... fetch every missing file from a peer or the hub
    commit   --dir D --file P                   verify .provision/partial/P and move it into place
    finalize --dir D --owner U                  all files verified? symlink + ownership
    push     (controller) --bundle B --files JSON --ssh JSON --dir D --script S
    prune    --root R --keep D ...              remove model dirs this tool placed that are not kept
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

META = ".provision"
CHUNK = 4 * 1024 * 1024


class Failure(Exception):
    pass


def emit(data):
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(directory):
    path = os.path.join(directory, META, "manifest.json")
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise Failure("cannot read %s: %s" % (path, exc))
    return data


def stamps_path(directory):
    return os.path.join(directory, META, "stamps.json")


def load_stamps(directory, manifest):
    try:
        with open(stamps_path(directory)) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    if data.get("manifest") != manifest.get("digest"):
        return {}
    return data.get("files", {})


def save_stamps(directory, manifest, stamps):
    path = stamps_path(directory)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"manifest": manifest.get("digest"), "files": stamps}, fh, sort_keys=True)
    os.replace(tmp, path)


def stamp_of(path, sha):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "sha256": sha}


def file_state(directory, entry, stamps, rehash):
    """ok | unknown (right size, not stamped: hash it) | bad (wrong size) | missing."""
    path = os.path.join(directory, entry["path"])
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    if st.st_size != entry["size"]:
        return "bad"
    stamp = stamps.get(entry["path"])
    cheap = (
        stamp is not None
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
        and stamp.get("inode") == st.st_ino
        and stamp.get("sha256") == entry["sha256"]
    )
    if cheap and not rehash:
        return "ok"
    return "unknown"


def free_bytes(directory):
    probe = directory
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


def partial_path(directory, rel):
    return os.path.join(directory, META, "partial", rel)


def cmd_status(args):
    directory = args.dir
    if args.check and not os.path.exists(os.path.join(directory, META, "manifest.json")):
        emit(
            {
                "dir": directory,
                "complete": False,
                "needed": [],
                "missing_bytes": 0,
                "free_bytes": free_bytes(directory),
                "restamped": [],
                "removed_corrupt": [],
                "changed": False,
            }
        )
        return
    manifest = load_manifest(directory)
    stamps = load_stamps(directory, manifest)
    needed, missing_bytes, restamped, corrupt = [], 0, [], []
    for entry in manifest["files"]:
        state = file_state(directory, entry, stamps, args.rehash)
        if state == "unknown":  # cheap check failed (or --rehash): hash it now
            path = os.path.join(directory, entry["path"])
            if sha256_file(path) == entry["sha256"]:
                stamps[entry["path"]] = stamp_of(path, entry["sha256"])
                restamped.append(entry["path"])
                continue
            corrupt.append(entry["path"])
            if not args.check:
                os.unlink(path)
            state = "missing"
        if state == "ok":
            continue
        if state == "bad":
            corrupt.append(entry["path"])
            if not args.check:
                os.unlink(os.path.join(directory, entry["path"]))
        part = partial_path(directory, entry["path"])
        have = os.path.getsize(part) if os.path.exists(part) else 0
        have = have if have <= entry["size"] else 0
        missing_bytes += entry["size"] - have
        needed.append(entry["path"])
    if restamped and not args.check:
        save_stamps(directory, manifest, stamps)
    emit(
        {
            "dir": directory,
            "complete": not needed,
            "needed": needed,
            "missing_bytes": missing_bytes,
            "free_bytes": free_bytes(directory),
            "restamped": restamped,
            "removed_corrupt": corrupt,
            "changed": bool(restamped or corrupt),
            "files": len(manifest["files"]),
        }
    )


def commit_file(directory, manifest, rel, owner):
    """Verify the partial file; move it into place and stamp it. Returns True when it was good."""
    entry = next((e for e in manifest["files"] if e["path"] == rel), None)
    if entry is None:
        raise Failure("%s is not in the manifest" % rel)
    part = partial_path(directory, rel)
    if not os.path.exists(part) or os.path.getsize(part) != entry["size"]:
        return False
    if sha256_file(part) != entry["sha256"]:
        os.unlink(part)  # corrupt beyond resuming: start this file over
        return False
    final = os.path.join(directory, rel)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    chown(part, owner)
    os.chmod(part, 0o644)
    os.replace(part, final)
    stamps = load_stamps(directory, manifest)
    stamps[rel] = stamp_of(final, entry["sha256"])
    save_stamps(directory, manifest, stamps)
    return True


def chown(path, owner):
    if not owner:
        return False
    pw = pwd.getpwnam(owner)
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) != (pw.pw_uid, pw.pw_gid):
        os.lchown(path, pw.pw_uid, pw.pw_gid)
        return True
    return False


def cmd_commit(args):
    manifest = load_manifest(args.dir)
    ok = commit_file(args.dir, manifest, args.file, args.owner)
    emit({"file": args.file, "ok": ok})
    if not ok:
        raise Failure("%s did not verify against the manifest (sha256); it will be fetched again" % args.file)


def ssh_command(args):
    cmd = [
        "ssh",
        "-i",
        args.key,
        "-o",
        "BatchMode=yes",
        "-o",
        "UserKnownHostsFile=" + args.known_hosts,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=15",
    ]
    if args.upstream_port:
        cmd += ["-p", str(args.upstream_port)]
    return shlex.join(cmd)


def upstream_size(args, rel):
    """Size of the upstream's verified file, or None while it does not have it."""
    src = "%s@%s:%s" % (args.upstream_user, args.upstream, os.path.join(args.upstream_path, rel))
    proc = subprocess.run(
        ["rsync", "--list-only", "-e", ssh_command(args), src], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    fields = proc.stdout.split()
    try:
        return int(fields[1].replace(",", "").replace(".", ""))
    except (IndexError, ValueError):
        return None


def pull_from_peer(args, entry):
    rel = entry["path"]
    deadline = time.monotonic() + args.wait_timeout
    while upstream_size(args, rel) != entry["size"]:
        if time.monotonic() > deadline:
            raise Failure(
                "%s: upstream %s did not have it within %d s" % (rel, args.upstream, args.wait_timeout)
            )
        time.sleep(1)
    part = partial_path(args.dir, rel)
    os.makedirs(os.path.dirname(part), exist_ok=True)
    src = "%s@%s:%s" % (args.upstream_user, args.upstream, os.path.join(args.upstream_path, rel))
    proc = subprocess.run(
        ["rsync", "--inplace", "--append-verify", "--timeout=120", "-e", ssh_command(args), src, part],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise Failure(
            "rsync from %s failed (%d): %s" % (args.upstream, proc.returncode, proc.stderr.strip()[-400:])
        )


def pull_from_hub(args, entry, token):
    rel = entry["path"]
    part = partial_path(args.dir, rel)
    os.makedirs(os.path.dirname(part), exist_ok=True)
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have >= entry["size"]:
        return
    url = "%s/%s/resolve/%s/%s" % (args.hub.rstrip("/"), args.repo, args.commit, urllib.request.quote(rel))
    headers = {"Range": "bytes=%d-" % have, "User-Agent": "provision-models/1", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as exc:
        raise Failure(
            "%s: the hub answered %d%s"
            % (rel, exc.code, " (gated: set the hub token)" if exc.code in (401, 403) else "")
        )
    except (urllib.error.URLError, OSError) as exc:
        raise Failure("%s: cannot reach the hub: %s" % (rel, exc))
    with resp, open(part, "ab" if resp.status == 206 else "wb") as fh:
        shutil.copyfileobj(resp, fh, CHUNK)


def cmd_pull(args):
    manifest = load_manifest(args.dir)
    token = None
    if args.token_file:
        with open(args.token_file) as fh:
            token = fh.read().strip()
    wanted = set(json.loads(args.files)) if args.files else None
    fetched, resumed = [], {}
    for entry in manifest["files"]:
        rel = entry["path"]
        if wanted is not None and rel not in wanted:
            continue
        if os.path.exists(os.path.join(args.dir, rel)):
            continue  # verified by status before
        for attempt in range(3):
            part = partial_path(args.dir, rel)
            if attempt == 0 and os.path.exists(part) and os.path.getsize(part):
                resumed[rel] = os.path.getsize(part)
            if args.hub:
                pull_from_hub(args, entry, token)
            else:
                pull_from_peer(args, entry)
            if commit_file(args.dir, manifest, rel, args.owner):
                fetched.append(rel)
                break
        else:
            raise Failure("%s failed verification 3 times" % rel)
    emit({"fetched": fetched, "resumed_from": resumed, "changed": bool(fetched)})


def cmd_push(args):
    """On the controller: push files of a bundle to one node, committing each on arrival."""
    ssh = json.loads(args.ssh)  # ["ssh", opts..., "user@host"]
    dest_host = ssh[-1]
    rsync_ssh = shlex.join(ssh[:-1])
    sudo = ["sudo", "-n"] if args.sudo else []
    pushed, sent, started = [], {}, time.monotonic()
    for rel in json.loads(args.files):
        src = os.path.join(args.bundle, rel)
        dest = "%s:%s" % (dest_host, partial_path(args.dir, rel))
        cmd = ["rsync", "--inplace", "--append-verify", "--mkpath", "--stats", "--timeout=120", "-e", rsync_ssh]
        if args.sudo:
            cmd.append("--rsync-path=sudo -n rsync")
        proc = subprocess.run(cmd + [src, dest], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise Failure(
                "rsync of %s to %s failed (%d): %s"
                % (rel, dest_host, proc.returncode, proc.stderr.strip()[-400:])
            )
        found = re.search(r"Total bytes sent: ([\d,.]+)", proc.stdout)
        sent[rel] = int(re.sub(r"[,.]", "", found.group(1))) if found else None
        remote = sudo + [
            "python3",
            args.script,
            "commit",
            "--dir",
            args.dir,
            "--file",
            rel,
            "--owner",
            args.owner,
        ]
        proc = subprocess.run(ssh + [shlex.join(remote)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise Failure("%s on %s: %s" % (rel, dest_host, (proc.stdout + proc.stderr).strip()[-400:]))
        pushed.append(rel)
    emit({"pushed": pushed, "sent_bytes": sent, "seconds": round(time.monotonic() - started, 1), "changed": bool(pushed)})


def cmd_finalize(args):
    manifest = load_manifest(args.dir)
    stamps = load_stamps(args.dir, manifest)
    bad = [e["path"] for e in manifest["files"] if file_state(args.dir, e, stamps, False) != "ok"]
    if bad:
        raise Failure("not verified on this node: %s" % ", ".join(bad[:5]))
    changed = []
    ggufs = sorted(e["path"] for e in manifest["files"] if e["path"].endswith(".gguf"))
    link = os.path.join(args.dir, "model.gguf")
    if args.gguf_link and ggufs and ggufs[0] != "model.gguf":
        if not (os.path.islink(link) and os.readlink(link) == ggufs[0]):
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(ggufs[0], link)
            changed.append("model.gguf")
        if chown(link, args.owner):
            changed.append("model.gguf owner")
    for root, dirs, files in os.walk(args.dir):
        dirs[:] = [d for d in dirs if not (root == args.dir and d == META)]
        for name in dirs + files:
            if chown(os.path.join(root, name), args.owner):
                changed.append(os.path.relpath(os.path.join(root, name), args.dir) + " owner")
    emit({"changed": bool(changed), "what": changed, "files": len(manifest["files"])})


def cmd_prune(args):
    keep = {os.path.normpath(k) for k in args.keep}
    removed = []
    if os.path.isdir(args.root):
        for root, dirs, _files in os.walk(args.root):
            depth = os.path.relpath(root, args.root).count(os.sep)
            if META in dirs and os.path.exists(os.path.join(root, META, "manifest.json")):
                dirs[:] = []
                if os.path.normpath(root) not in keep:
                    shutil.rmtree(root)
                    removed.append(root)
            elif depth >= 4:
                dirs[:] = []
    emit({"removed": removed, "changed": bool(removed)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("status")
    p.add_argument("--dir", required=True)
    p.add_argument("--rehash", action="store_true")
    p.add_argument("--check", action="store_true", help="change nothing (check mode)")
    p = sub.add_parser("commit")
    p.add_argument("--dir", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--owner", default="")
    p = sub.add_parser("pull")
    p.add_argument("--dir", required=True)
    p.add_argument("--owner", default="")
    p.add_argument("--files", default="")
    p.add_argument("--upstream")
    p.add_argument("--upstream-user", default="root")
    p.add_argument("--upstream-port", type=int, default=0)
    p.add_argument("--upstream-path")
    p.add_argument("--key")
    p.add_argument("--known-hosts")
    p.add_argument("--wait-timeout", type=int, default=1800)
    p.add_argument("--hub")
    p.add_argument("--repo")
    p.add_argument("--commit")
    p.add_argument("--token-file")
    p = sub.add_parser("push")
    p.add_argument("--bundle", required=True)
    p.add_argument("--files", required=True)
    p.add_argument("--ssh", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--owner", default="")
    p.add_argument("--sudo", action="store_true")
    p = sub.add_parser("finalize")
    p.add_argument("--dir", required=True)
    p.add_argument("--owner", default="")
    p.add_argument("--gguf-link", action="store_true")
    p = sub.add_parser("prune")
    p.add_argument("--root", required=True)
    p.add_argument("--keep", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        globals()["cmd_" + args.command](args)
    except Failure as exc:
        emit({"failed": True, "msg": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Filters of the `models` role: each host's placements, and the fleet's fan-out schedule.

They run on the controller and use provision's own code (provision.modelstore), like the
`provision_plan` lookup does.
"""

from __future__ import annotations

import os
import posixpath

from ansible.errors import AnsibleFilterError


def _modelstore():
    try:
        from provision.modelstore import fanout
        from provision.modelstore.manifest import MANIFEST_NAME, Manifest
    except ImportError as exc:
        raise AnsibleFilterError(
            f"provision is not importable by this Ansible: pip install it in the same environment ({exc})"
        ) from exc
    return fanout, MANIFEST_NAME, Manifest


def _source_of(dep, host_deployments):
    """The deployment's `source` from the inventory's provision_deployments (as Ansible templated
    it: a bundle path may be a Jinja expression, e.g. the lab's state dir), else from the plan
    (whose strings reach Ansible as data, never templated)."""
    for item in host_deployments or []:
        if isinstance(item, dict) and item.get("name") == dep.get("name") and item.get("source"):
            return dict(item["source"])
    if dep.get("source"):
        return dict(dep["source"])
    return {}


def _bundle_dir(path, base, model, quant, manifest_name):
    path = os.path.expanduser(str(path))
    path = path if os.path.isabs(path) else os.path.join(base, path)
    for candidate in (path, os.path.join(path, model, quant or "default")):
        if os.path.isfile(os.path.join(candidate, manifest_name)):
            return os.path.normpath(candidate)
    raise AnsibleFilterError(
        f"model {model} ({quant}): no bundle at {path} (neither {manifest_name} there nor in "
        f"{model}/{quant}/ below it); fix: make it with `provision models bundle {model} --quant {quant} "
        "--out DIR` and set the deployment's source.bundle to DIR (relative paths are relative to the "
        "inventory file)"
    )


def _hub_manifest(dep, source):
    from provision.errors import InvalidInput
    from provision.modelstore.bundle import resolve_target, select
    from provision.modelstore.hub import HubClient, HubError
    from provision.modelstore.manifest import FileEntry, Manifest, guess_format

    try:
        target = resolve_target(
            source.get("repo") or dep["model"], dep.get("quantization"), source.get("include")
        )
        if source.get("repo"):
            target.model = dep["model"]
            target.quantization = dep.get("quantization")
        client = HubClient(endpoint=source.get("endpoint"))
        info = client.model_info(target.repo, str(source.get("revision") or "main"))
    except InvalidInput as exc:
        raise AnsibleFilterError(str(exc)) from None
    except HubError as exc:
        raise AnsibleFilterError(f"{exc}; fix: {exc.fix}") from None
    files = select(info.files, target.include)
    missing_sha = [f.path for f in files if not f.sha256]
    if not files or (missing_sha and any(f.size > 10 * 1024 * 1024 for f in files if not f.sha256)):
        raise AnsibleFilterError(f"{target.repo}: nothing to place, or large files without a SHA-256")
    manifest = Manifest(
        model=dep["model"],
        quantization=dep.get("quantization"),
        format=guess_format([f.path for f in files]),
        files=[FileEntry(f.path, f.size, f.sha256 or "") for f in files if f.sha256],
        source={"kind": "hf", "repo": target.repo, "revision": info.commit},
        license=target.license,
        gated=target.gated or info.gated,
    )
    return manifest, client.endpoint, target.repo, info.commit


def models_placements(deployments, host_deployments, inventory_dir):
    """One item per model dir on this host (deployments sharing a model share its files)."""
    fanout, manifest_name, manifest_cls = _modelstore()
    out, seen = [], set()
    for dep in deployments or []:
        model_dir = dep.get("model_dir")
        if not model_dir or model_dir in seen:
            continue
        seen.add(model_dir)
        source = _source_of(dep, host_deployments)
        if not source:
            continue  # no source declared: the models stage leaves this deployment alone
        item = {
            "deployment": dep.get("name"),
            "model": dep.get("model"),
            "quantization": dep.get("quantization"),
            "engine": dep.get("engine"),
            "dir": model_dir,
            "peers": bool(source.get("peers", True)),
            "origin": None,
            "gated": bool(dep.get("gated", False)),
        }
        if source.get("bundle"):
            bundle = _bundle_dir(
                source["bundle"], inventory_dir, dep["model"], dep.get("quantization"), manifest_name
            )
            try:
                manifest = manifest_cls.read(__import__("pathlib").Path(bundle))
            except (OSError, ValueError) as exc:
                raise AnsibleFilterError(
                    f"{bundle}/{manifest_name}: {exc}; fix: re-create the bundle"
                ) from None
            item.update(origin="controller", bundle=bundle)
        elif source.get("hub"):
            manifest, endpoint, repo, commit = _hub_manifest(dep, source)
            item.update(origin="hub", hub={"endpoint": endpoint, "repo": repo, "commit": commit})
        else:
            manifest = None
        if manifest is None:
            item["manifest"] = None
            item["key"] = f"peer:{dep.get('model')}:{dep.get('quantization')}"
        else:
            item["manifest"] = manifest.as_dict()
            item["key"] = manifest.digest
            item["gated"] = item["gated"] or manifest.gated
        item["gguf"] = bool(manifest and manifest.format == "gguf")
        out.append(item)
    return sorted(out, key=lambda i: i["key"])


def models_schedule(play_hosts, hostvars, degree=0):
    """{host: [job]} for every host that must receive a model; a job names its upstream.

    A job: key, dir, files (the target's missing files), upstream ("controller", "hub" or a
    host), and for peers the upstream's address, port and path relative to its served root.
    Also `serve`: {host: {root, from: [addresses]}} for the upstreams' authorized_keys.
    """
    fanout, _, _ = _modelstore()
    by_key = {}
    for host in play_hosts:
        hv = hostvars[host]
        for st in hv.get("models_state") or []:
            entry = by_key.setdefault(
                st["key"], {"holders": [], "targets": [], "origin": None, "dirs": {}, "item": st}
            )
            entry["dirs"][host] = st["dir"]
            if st.get("origin") and not entry["origin"]:
                entry["origin"] = st["origin"]
            (entry["holders"] if st["complete"] else entry["targets"]).append(host)
    jobs = {h: [] for h in play_hosts}
    serve = {}
    roots = {}
    for host in play_hosts:
        dirs = [st["dir"] for st in hostvars[host].get("models_state") or []]
        roots[host] = posixpath.commonpath(dirs) if dirs else "/"
    for key in sorted(by_key):
        entry = by_key[key]
        if not entry["targets"]:
            continue
        holders = entry["holders"] if entry["item"].get("peers", True) else []
        try:
            plan = fanout.plan(
                holders, entry["targets"], entry["origin"], len(entry["item"].get("files") or [1]), degree
            )
        except ValueError:
            raise AnsibleFilterError(
                f"{entry['item'].get('model')} ({entry['item'].get('quantization')}): no node holds it and no "
                "source was declared; fix: set the deployment's source (bundle, hub) in the inventory"
            ) from None
        for a in plan:
            st = next(s for s in hostvars[a.target]["models_state"] if s["key"] == key)
            job = {
                "key": key,
                "dir": st["dir"],
                "files": st["needed"],
                "upstream": a.upstream,
                "level": a.level,
            }
            if a.upstream not in fanout.ORIGINS:
                up = hostvars[a.upstream]
                job.update(
                    upstream_address=up.get("models_address"),
                    upstream_port=int(up.get("models_ssh_port") or 22),
                    upstream_path=posixpath.relpath(entry["dirs"][a.upstream], roots[a.upstream]),
                )
                srv = serve.setdefault(a.upstream, {"root": roots[a.upstream], "from": []})
                addr = hostvars[a.target].get("models_address")
                if addr not in srv["from"]:
                    srv["from"].append(addr)
            jobs[a.target].append(job)
    return {"jobs": jobs, "serve": serve}


class FilterModule:
    def filters(self):
        return {"models_placements": models_placements, "models_schedule": models_schedule}

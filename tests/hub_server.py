# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""A small in-memory stand-in for the part of the Hugging Face Hub HTTP API that `huggingface_hub` uses.

It speaks what `create_repo`, `create_branch`, `create_commit` (preupload + NDJSON commit with base64
"regular" files), `repo_info`, `list_repo_tree`, `get_paths_info`, `list_repo_refs` and file downloads
(`/resolve/`, with HEAD and byte ranges) send, which is enough for `snapshot_download`,
`from_pretrained` and `datasets.load_dataset` to read back what was pushed. Every file is uploaded
"regular" (the preupload answer), so neither LFS nor Xet is involved. Write requests need the token the
server was started with; so do reads of private repos.

    server = HubServer(token="hf_test")
    server.start()            # thread on 127.0.0.1, free port; server.url is the endpoint
    ...
    server.stop()
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
EPOCH = "2026-01-01T00:00:00.000Z"


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob, which the Hub reports as a regular file's `oid` and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class Repo:
    def __init__(self, repo_type: str, repo_id: str, private: bool, sdk: str | None):
        self.repo_type, self.repo_id, self.private, self.sdk = repo_type, repo_id, private, sdk
        self.commits: dict[str, dict] = {}
        self.branches: dict[str, str] = {}
        self.branches["main"] = self._add_commit({}, parent=None, message="initial commit")

    def _add_commit(self, files: dict[str, bytes], parent: str | None, message: str) -> str:
        tree = {path: git_blob_oid(content) for path, content in sorted(files.items())}
        oid = hashlib.sha1(json.dumps([tree, parent, message, len(self.commits)]).encode()).hexdigest()
        self.commits[oid] = {"files": dict(files), "parent": parent, "message": message}
        return oid

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None

    def commit(self, branch: str, operations: list[dict], message: str) -> str:
        parent = self.branches[branch]
        files = dict(self.commits[parent]["files"])
        for key, value in operations:
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
        self.branches[branch] = self._add_commit(files, parent=parent, message=message)
        return self.branches[branch]


class HubServer:
    """The Hub stand-in; `repos` maps `(repo_type, repo_id)` to `Repo` for tests to inspect."""

    def __init__(self, token: str, user: str = "tester"):
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubServer":
        handler = type("BoundHubHandler", (HubHandler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        return dict(repo.commits[repo.resolve(revision)]["files"])


class HubHandler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        # Requests are recorded in `hub.requests`; stderr stays clean for the tests' log assertions.
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head_only: bool = False) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None, head_only: bool = False) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head_only=head_only)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _repo(self, repo_type: str, repo_id: str, write: bool = False, head_only: bool = False) -> Repo | None:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, f"Repository {repo_id} not found", "RepoNotFound", head_only=head_only)
            return None
        if write and not self._authorized():
            self._error(401, "Invalid credentials in Authorization header", head_only=head_only)
            return None
        return repo

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        with self.hub.lock:
            self.hub.requests.append((method, path))
        body = self._body() if method == "POST" else b""
        head_only = method == "HEAD"
        with self.hub.lock:
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(json.loads(body))
            if method == "POST" and path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            if method == "GET" and path == "/api/whoami-v2":
                if not self._authorized():
                    return self._error(401, "Invalid credentials in Authorization header")
                return self._json(200, {"type": "user", "name": self.hub.user, "orgs": [], "auth": {}})
            match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
            if match:
                return self._api(method, REPO_TYPES[match[1]], match[2], match[3] or "", query, body)
            match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if match and method in {"GET", "HEAD"}:
                repo_type = REPO_TYPES[match[1]] if match[1] else "model"
                return self._resolve(repo_type, match[2], match[3], unquote(match[4]), head_only)
            return self._error(404, f"no route for {method} {path}", head_only=head_only)

    do_GET = lambda self: self._route("GET")  # noqa: E731
    do_HEAD = lambda self: self._route("HEAD")  # noqa: E731
    do_POST = lambda self: self._route("POST")  # noqa: E731

    def _create_repo(self, payload: dict) -> None:
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"http://{self.headers['Host']}/{URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.hub.repos:
            return self._json(409, {"error": "You already created this repo", "url": url})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.hub.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private, payload.get("sdk"))
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _api(self, method: str, repo_type: str, repo_id: str, rest: str, query: dict, body: bytes) -> None:
        write = method == "POST"
        repo = self._repo(repo_type, repo_id, write=write)
        if repo is None:
            return None
        action, _, tail = rest.partition("/")
        if method == "GET" and action in {"", "revision"}:
            return self._info(repo, tail or "main")
        if method == "GET" and action == "refs":
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in repo.branches.items()
            ]
            return self._json(200, {"branches": branches, "tags": [], "converts": []})
        if method == "POST" and action == "branch":
            branch = unquote(tail)
            if branch in repo.branches:
                return self._error(409, f"Branch {branch} already exists")
            start = (json.loads(body) if body else {}).get("startingPoint") or "main"
            oid = repo.resolve(start)
            if oid is None:
                return self._error(404, f"Revision {start} not found", "RevisionNotFound")
            repo.branches[branch] = oid
            return self._json(200, {})
        revision, _, sub_path = tail.partition("/")
        oid = repo.resolve(revision)
        if oid is None:
            return self._error(404, f"Revision {unquote(revision)} not found", "RevisionNotFound")
        files = repo.commits[oid]["files"]
        if method == "POST" and action == "preupload":
            entries = json.loads(body)["files"]
            return self._json(
                200,
                {
                    "files": [
                        {
                            "path": entry["path"],
                            "uploadMode": "regular",
                            "shouldIgnore": False,
                            "oid": git_blob_oid(files[entry["path"]]) if entry["path"] in files else None,
                        }
                        for entry in entries
                    ]
                },
            )
        if method == "POST" and action == "commit":
            return self._commit(repo, unquote(revision), body)
        if method == "GET" and action == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            return self._tree(repo_id, files, unquote(sub_path).strip("/"), recursive)
        if method == "POST" and action == "paths-info":
            form = parse_qs(body.decode())
            entries = []
            for requested in form.get("paths", []):
                requested = requested.strip("/")
                if requested in files:
                    entries.append(self._file_entry(requested, files[requested]))
                elif any(p.startswith(requested + "/") for p in files):
                    entries.append({"type": "directory", "path": requested, "oid": _dir_oid(files, requested)})
            return self._json(200, entries)
        return self._error(404, f"no route for {method} api/{repo_type}s/{repo_id}/{rest}")

    def _info(self, repo: Repo, revision: str) -> None:
        oid = repo.resolve(revision)
        if oid is None:
            return self._error(404, f"Revision {unquote(revision)} not found", "RevisionNotFound")
        files = repo.commits[oid]["files"]
        payload = {
            "id": repo.repo_id,
            "_id": repo.repo_id,
            "sha": oid,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": EPOCH,
            "createdAt": EPOCH,
            "tags": [],
            "siblings": [{"rfilename": path, "size": len(content)} for path, content in sorted(files.items())],
        }
        if repo.repo_type == "space":
            payload["sdk"] = repo.sdk
        return self._json(200, payload)

    @staticmethod
    def _file_entry(path: str, content: bytes) -> dict:
        return {"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)}

    def _tree(self, repo_id: str, files: dict[str, bytes], prefix: str, recursive: bool) -> None:
        if prefix and prefix in files:
            return self._error(400, f"{prefix} is a file, not a folder")
        inside = {p: c for p, c in files.items() if not prefix or p.startswith(prefix + "/")}
        if prefix and not inside:
            return self._error(404, f"{prefix} does not exist in {repo_id}", "EntryNotFound")
        entries, folders = [], set()
        base = len(prefix) + 1 if prefix else 0
        for path, content in sorted(inside.items()):
            parts = path[base:].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folder = path[:base] + "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    entries.append({"type": "directory", "path": folder, "oid": _dir_oid(files, folder)})
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(path, content))
        return self._json(200, entries)

    def _commit(self, repo: Repo, branch: str, body: bytes) -> None:
        if branch not in repo.branches:
            return self._error(404, f"Branch {branch} not found", "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        operations = [(line["key"], line["value"]) for line in lines if line["key"] != "header"]
        unsupported = {key for key, _ in operations} - {"file", "deletedFile", "deletedFolder"}
        if unsupported:
            return self._error(422, f"this test server does not support {sorted(unsupported)} commit operations")
        oid = repo.commit(branch, operations, header.get("summary", ""))
        host = f"http://{self.headers['Host']}"
        return self._json(
            200,
            {
                "commitUrl": f"{host}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            },
        )

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, head_only: bool) -> None:
        repo = self._repo(repo_type, repo_id, head_only=head_only)
        if repo is None:
            return None
        oid = repo.resolve(revision)
        if oid is None:
            return self._error(404, f"Revision {unquote(revision)} not found", "RevisionNotFound", head_only=head_only)
        files = repo.commits[oid]["files"]
        if path not in files:
            return self._error(404, f"Entry {path} not found", "EntryNotFound", head_only=head_only)
        content = files[path]
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{git_blob_oid(content)}"',
            "X-Repo-Commit": oid,
            "Accept-Ranges": "bytes",
        }
        status = 200
        byte_range = _parse_range(self.headers.get("Range"), len(content))
        if byte_range is not None:
            start, end = byte_range
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
        headers["Content-Length"] = str(len(content))
        return self._send(status, content, headers, head_only=head_only)


def _dir_oid(files: dict[str, bytes], folder: str) -> str:
    listing = sorted((p, git_blob_oid(c)) for p, c in files.items() if p.startswith(folder + "/"))
    return hashlib.sha1(json.dumps(listing).encode()).hexdigest()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match:
        return None
    start_text, end_text = match.groups()
    if start_text == "":
        start, end = max(0, size - int(end_text)), size - 1
    else:
        start = int(start_text)
        end = min(int(end_text), size - 1) if end_text else size - 1
    return start, end

"""A local HTTP server on 127.0.0.1 that speaks the part of the Hugging Face Hub API huggingface_hub calls:
model info with siblings (size, blob id, LFS sha256), model search, and resolve/ downloads (HEAD with the
etag and commit headers, GET with Range). Tests can make it drop the connection mid-file, corrupt a byte,
or throttle, and read back every Range header it was sent.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
LFS_MIN = 1024  # files at least this big are "LFS" files (sha256); smaller ones get a git blob id


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, bytes]
    tags: list[str] = field(default_factory=list)
    downloads: int = 0

    def sibling(self, name: str) -> dict:
        data = self.files[name]
        blob_id = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
        entry = {"rfilename": name, "size": len(data), "blobId": blob_id}
        if len(data) >= LFS_MIN:
            entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        return entry

    def etag(self, name: str) -> str:
        sibling = self.sibling(name)
        return sibling["lfs"]["sha256"] if "lfs" in sibling else sibling["blobId"]


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.range_headers: list[tuple[str, str | None]] = []  # (file, Range header) of every GET
        self.drop_after: dict[str, int] = {}  # file -> bytes sent before the connection drops (once)
        self.corrupt: set[str] = set()  # files served with one byte flipped
        self.delay_per_chunk_s = 0.0
        self.chunk = 64 * 1024
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_folder(self, repo_id: str, folder: Path, tags: list[str] | None = None, downloads: int = 0) -> HubRepo:
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        repo = HubRepo(repo_id, files, tags or [], downloads)
        self.repos[repo_id] = repo
        return repo

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _json(self, payload: object, status: int = 200) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _model_info(self, repo: HubRepo) -> dict:
                return {"id": repo.repo_id, "modelId": repo.repo_id, "sha": COMMIT, "private": False,
                        "downloads": repo.downloads, "likes": 0, "tags": repo.tags,
                        "siblings": [repo.sibling(n) for n in repo.files]}

            def do_GET(self) -> None:
                self._serve(head=False)

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def _serve(self, head: bool) -> None:
                parsed = urlparse(self.path)
                path = unquote(parsed.path)
                hub.requests.append(f"{self.command} {path}")
                if path == "/api/models":
                    query = parse_qs(parsed.query)
                    words = (query.get("search") or [""])[0].lower().split()
                    wanted = query.get("filter") or []
                    found = [r for r in hub.repos.values()
                             if all(w in r.repo_id.lower() for w in words) and all(t in r.tags for t in wanted)]
                    found.sort(key=lambda r: -r.downloads)
                    return self._json([{"id": r.repo_id, "modelId": r.repo_id, "downloads": r.downloads, "likes": 0,
                                        "tags": r.tags, "private": False} for r in found])
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):]
                    repo_id = rest.split("/revision/")[0]
                    repo = hub.repos.get(repo_id)
                    return self._json(self._model_info(repo)) if repo else self._not_found()
                if "/resolve/" in path:
                    repo_id, rest = path.lstrip("/").split("/resolve/", 1)
                    name = rest.split("/", 1)[1] if "/" in rest else ""
                    repo = hub.repos.get(repo_id)
                    if repo is None or name not in repo.files:
                        return self._not_found()
                    return self._file(repo, name, head)
                self._not_found()

            def _file(self, repo: HubRepo, name: str, head: bool) -> None:
                data = repo.files[name]
                if name in hub.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                range_header = self.headers.get("Range")
                if not head:
                    hub.range_headers.append((name, range_header))
                if range_header and range_header.startswith("bytes="):
                    start = int(range_header[6:].split("-")[0])
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("ETag", f'"{repo.etag(name)}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if head:
                    return
                limit = hub.drop_after.pop(name, None)
                sent = 0
                while sent < len(body):
                    piece = body[sent:sent + hub.chunk]
                    if limit is not None and sent + len(piece) > limit:
                        self.wfile.write(piece[: max(0, limit - sent)])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)  # drop the connection mid-file
                        return
                    try:
                        self.wfile.write(piece)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(piece)
                    if hub.delay_per_chunk_s:
                        time.sleep(hub.delay_per_chunk_s)

        return Handler

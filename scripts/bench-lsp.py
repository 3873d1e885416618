#!/usr/bin/env python3
"""Latency of the language server, measured over its real stdio JSON-RPC (issue: LSP benches).

  scripts/bench-lsp.py --bin target/release/aurora [--edits 200] [--lines 5000]
                       [--stdlib DIR] [--json OUT]

1. keystroke: a generated 5,000-line Python file is open; each of N edits is one typed character
   that completes a new function name (`def handler_17(` -> `def handler_17q(`). Measured: from
   writing the didChange frame to receiving the `aurora/search` answer that finds the new name
   (the search is sent right after the change; the server flushes the buffer before searching).
2. search under indexing (with --stdlib): a cold store on a copy of DIR (e.g. CPython's Lib);
   searches are sent back to back, 20 ms apart, from `initialized` until indexing progress ends.
   Then the same queries on the finished index, for comparison.

Prints a table; --json writes the figures. Exits non-zero on any failure.
"""

import argparse
import json
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Server:
    """`aurora lsp` with a minimal editor: answers server requests, collects notifications."""

    def __init__(self, binary, root, log):
        env = dict(os.environ, AURORA_LOG=os.environ.get("AURORA_LOG", "aurora=warn"))
        self.proc = subprocess.Popen(
            [binary, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env
        )
        self.root = root
        self.next_id = 1
        self.responses = {}
        self.cond = threading.Condition()
        self.notifications = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _write(self, msg):
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self.cond:
                        self.responses[None] = "closed"
                        self.cond.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            msg = json.loads(out.read(length))
            if "method" in msg and "id" in msg:
                result = None
                if msg["method"] == "workspace/configuration":
                    result = [None] * len(msg["params"]["items"])
                self._write({"jsonrpc": "2.0", "id": msg["id"], "result": result})
            elif "method" in msg:
                self.notifications.put(msg)
            else:
                with self.cond:
                    self.responses[msg["id"]] = msg
                    self.cond.notify_all()

    def send(self, method, params):
        i = self.next_id
        self.next_id += 1
        self._write({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        return i

    def wait(self, i, timeout=120):
        deadline = time.monotonic() + timeout
        with self.cond:
            while i not in self.responses:
                if None in self.responses:
                    raise RuntimeError("the server exited")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no answer to request {i}")
                self.cond.wait(left)
            msg = self.responses.pop(i)
        if "error" in msg:
            raise RuntimeError(f"request {i} failed: {msg['error']}")
        return msg["result"]

    def request(self, method, params):
        return self.wait(self.send(method, params))

    def notify(self, method, params):
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, capabilities=None, name="bench"):
        """`initialize` with utf-16 and work-done progress, plus any further client `capabilities`."""
        uri = "file://" + self.root
        caps = {"general": {"positionEncodings": ["utf-16"]}, "window": {"workDoneProgress": True}}
        caps.update(capabilities or {})
        self.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": None, "capabilities": caps,
             "workspaceFolders": [{"uri": uri, "name": name}]},
        )
        self.notify("initialized", {})

    def indexing_ended(self, block):
        """True once an indexing progress `end` arrived (drains notifications)."""
        while True:
            try:
                msg = self.notifications.get(block=block, timeout=600 if block else None)
            except queue.Empty:
                return False
            value = msg.get("params", {}).get("value", {})
            if msg["method"] == "$/progress" and value.get("kind") == "end":
                return True

    def close(self):
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(ms):
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def generate(lines):
    """A Python module of about `lines` lines: classes with methods, and functions."""
    out = ['"""Generated for the keystroke benchmark."""', "import os", ""]
    n = 0
    while len(out) < lines:
        if n % 5 == 0:
            out += [f"class Service{n}:", f'    """Service number {n}."""', ""]
            for m in range(3):
                out += [f"    def method_{n}_{m}(self, value):", f"        return value + {m}", ""]
        out += [
            f"def handler_{n}(request, retries=3):",
            f'    """Handle request kind {n}."""',
            "    total = 0",
            "    for attempt in range(retries):",
            "        total += attempt * 2",
            "    return os.path.join(str(total), request)",
            "",
            "",
        ]
        n += 1
    return "\n".join(out) + "\n"


def bench_keystroke(binary, edits, lines, log):
    root = tempfile.mkdtemp(prefix="aurora-keystroke-")
    text = generate(lines)
    path = os.path.join(root, "big_module.py")
    with open(path, "w") as f:
        f.write(text)
    server = Server(binary, root, log)
    try:
        server.initialize()
        server.indexing_ended(block=True)
        uri = "file://" + path
        server.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        server.request("aurora/search", {"query": "handler"})  # the open buffer is written once
        doc_lines = text.split("\n")
        defs = [i for i, line in enumerate(doc_lines) if line.startswith("def handler_")]
        rng = random.Random(7)
        ms, retries = [], 0
        for version in range(2, edits + 2):
            row = rng.choice(defs)
            line = doc_lines[row]
            col = line.index("(")
            letter = "abcdefghijklmnopqrstuvwxyz"[version % 26]
            doc_lines[row] = line[:col] + letter + line[col:]
            name = doc_lines[row][4 : col + 1]
            pos = {"line": row, "character": col}
            start = time.perf_counter()
            server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": pos, "end": pos}, "text": letter}],
                },
            )
            while True:
                result = server.request("aurora/search", {"query": name, "limit": 3})
                if any(r["qualifiedName"] == name for r in result["results"]):
                    break
                retries += 1
                if retries > edits:
                    raise RuntimeError(f"{name} was never found")
            ms.append((time.perf_counter() - start) * 1000)
        return dict(summary(ms), lines=len(text.split("\n")) - 1, retries=retries)
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


QUERIES = [
    "parse a url into components",
    "json encoder default",
    "HTTPConnection request",
    "thread pool executor submit",
    "read config file sections",
    "decode base64",
    "socket timeout",
    "temporary directory cleanup",
]


def bench_search_under_indexing(binary, stdlib, log):
    root = tempfile.mkdtemp(prefix="aurora-stdlib-")
    tree = os.path.join(root, "Lib")
    shutil.copytree(stdlib, tree, ignore=shutil.ignore_patterns(".aurora"))
    server = Server(binary, tree, log)
    try:
        started = time.perf_counter()
        server.initialize()
        during, i = [], 0
        while not server.indexing_ended(block=False):
            q = QUERIES[i % len(QUERIES)]
            i += 1
            t = time.perf_counter()
            try:
                server.request("aurora/search", {"query": q})
            except RuntimeError as e:
                if "-33005" not in str(e):  # IndexNotReady before the store opens
                    raise
                time.sleep(0.02)
                continue
            during.append((time.perf_counter() - t) * 1000)
            time.sleep(0.02)
        index_s = time.perf_counter() - started
        after = []
        for k in range(len(QUERIES) * 5):
            t = time.perf_counter()
            server.request("aurora/search", {"query": QUERIES[k % len(QUERIES)]})
            after.append((time.perf_counter() - t) * 1000)
        status = server.request("aurora/status", {})
        chunks = sum(f["chunks"] for f in status["folders"])
        return {
            "during_indexing": summary(during) if during else None,
            "after_indexing": summary(after),
            "index_seconds": round(index_s, 2),
            "chunks": chunks,
        }
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--stdlib")
    ap.add_argument("--json")
    ap.add_argument("--log", default=os.devnull, help="server stderr goes here")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    out = {"machine": {"cores": os.cpu_count()}}
    with open(args.log, "ab") as log:
        out["keystroke"] = bench_keystroke(binary, args.edits, args.lines, log)
        k = out["keystroke"]
        print(
            f"keystroke to searchable ({k['lines']} lines, {k['n']} edits): "
            f"p50 {k['p50_ms']} ms  p95 {k['p95_ms']} ms  max {k['max_ms']} ms  (searches repeated: {k['retries']})"
        )
        if args.stdlib:
            out["search_under_indexing"] = s = bench_search_under_indexing(binary, args.stdlib, log)
            d, a = s["during_indexing"], s["after_indexing"]
            if d:
                print(
                    f"search during a cold index ({s['chunks']} chunks, {s['index_seconds']} s): "
                    f"n {d['n']}  p50 {d['p50_ms']} ms  p95 {d['p95_ms']} ms  max {d['max_ms']} ms"
                )
            print(f"search after indexing: p50 {a['p50_ms']} ms  p95 {a['p95_ms']} ms  max {a['max_ms']} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"bench-lsp: FAILED: {e}", file=sys.stderr)
        sys.exit(1)

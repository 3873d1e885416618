#!/usr/bin/env python3
"""Soak test of the language server (issue 7): drives the real `aurora lsp` over stdio for N minutes
with random edits, saves, external writes, renames, deletes, searches and questions (a fake
OpenAI-compatible provider with random latency and injected 429/500 failures), cancelling some
questions, then checks:

* every request was answered exactly once (cancelled ones with RequestCancelled or a result);
* no panic in the server's log;
* `PRAGMA integrity_check` of the store is ok;
* the store's chunks equal those of a cold index of the final tree;
* RSS growth is bounded (start and end RSS are printed).

  scripts/soak.py --bin target/debug/aurora [--minutes 2] [--seed 1] [--files 40]

Exits non-zero on any failure.
"""

import argparse
import importlib.util
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_spec = importlib.util.spec_from_file_location("bench_lsp", os.path.join(HERE, "bench-lsp.py"))
bench_lsp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_lsp)

WORDS = ["invoice", "cart", "payment", "session", "ledger", "refund", "coupon", "shipment", "catalog", "review"]


class CountingDict(dict):
    """The responses map, counting every answer per request id (a duplicate answer is a failure)."""

    def __init__(self):
        super().__init__()
        self.counts = {}

    def __setitem__(self, key, value):
        self.counts[key] = self.counts.get(key, 0) + 1
        super().__setitem__(key, value)


class Server(bench_lsp.Server):
    def __init__(self, binary, root, log):
        super().__init__(binary, root, log)
        self.responses = CountingDict()


def module(word, n):
    out = [f'"""The {word} module {n}."""', "import os", ""]
    for k in range(6):
        out += [
            "",
            f"def {word}_{n}_step_{k}(value, retries=3):",
            f'    """Process a {word} value, step {k}."""',
            "    if value is None:",
            f'        raise ValueError("{word} {k}")',
            f"    return os.path.join(str(value), '{word}{k}')",
            "",
        ]
    out += [f"class {word.title()}{n}Service:", f'    """The {word} service."""', "",
            "    def run(self, value):", f"        return {word}_{n}_step_0(value)", ""]
    return "\n".join(out) + "\n"


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def chunks(db):
    conn = sqlite3.connect(db)
    try:
        return sorted(
            conn.execute(
                "SELECT file_path, kind, qualified_name, ordinal, start_line, end_line, hex(content_hash) FROM chunks"
            ).fetchall()
        )
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    ap.add_argument("--steady", action="store_true",
                    help="edits and external writes change code in place (the workspace does not grow), to see RSS level off")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="aurora-soak-")
    root = os.path.join(tmp, "ws")
    home = os.path.join(tmp, "home")
    os.makedirs(os.path.join(root, "app"))
    os.makedirs(os.path.join(home, "aurora"))
    for n in range(args.files):
        with open(os.path.join(root, "app", f"{WORDS[n % len(WORDS)]}_{n}.py"), "w") as f:
            f.write(module(WORDS[n % len(WORDS)], n))

    fake = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "editors/testing/fake_llm.py"), "--latency-ms", "300",
         "--fail-rate", "0.1", "--chunk-delay-ms", "5", "--forget-bodies", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    port = int(fake.stdout.readline().split()[1])
    with open(os.path.join(home, "aurora", "config.toml"), "w") as f:
        f.write(
            f'[llm]\nprovider = "openai"\nmodel = "fake"\nbaseUrl = "http://127.0.0.1:{port}/v1"\n'
            f'apiKeyEnv = "AURORA_SOAK_KEY"\nmaxRetries = 1\n\n[soar.timeouts]\noverallSecs = 60\n'
        )
    # The server inherits these (bench_lsp.Server passes os.environ on).
    os.environ.update({"XDG_CONFIG_HOME": home, "AURORA_SOAK_KEY": "soak-key", "AURORA_LOG": "aurora=info"})
    env = dict(os.environ)
    log_path = os.path.join(tmp, "server.log")
    log = open(log_path, "w")
    server = Server(args.bin, root, log)
    failures = []
    try:
        server.initialize({"workspace": {"workspaceEdit": {"documentChanges": True}},
                           "textDocument": {"synchronization": {"didSave": True}}}, name="soak")
        server.indexing_ended(block=True)
        start_rss = rss_kb(server.proc.pid)
        start_chunks = len(chunks(os.path.join(root, ".aurora", "memory.db")))
        open_docs = {}  # path -> (version, text)
        sent = {}  # id -> method
        cancelled = set()
        counts = {}
        deadline = time.monotonic() + args.minutes * 60
        began = time.monotonic()
        next_sample = began
        samples = []
        made = 0

        def files():
            return sorted(os.path.relpath(os.path.join(d, n), root)
                          for d, _, ns in os.walk(os.path.join(root, "app")) for n in ns if n.endswith(".py"))

        def uri(rel):
            return "file://" + os.path.join(root, rel)

        def request(method, params):
            i = server.send(method, params)
            sent[i] = method
            return i

        while time.monotonic() < deadline:
            action = rng.choices(
                ["open", "edit", "save", "close", "external", "rename", "delete", "create", "search", "ask",
                 "cancel", "status"],
                weights=[4, 30, 6, 3, 5, 2, 1, 2, 20, 5, 2, 3],
            )[0]
            counts[action] = counts.get(action, 0) + 1
            closed = [f for f in files() if f not in open_docs]
            if args.steady and action in ("create", "rename", "delete"):
                action = "search"
            if time.monotonic() >= next_sample:
                samples.append((round((time.monotonic() - began) / 60, 1), rss_kb(server.proc.pid) // 1024))
                next_sample += 30
            if action == "open" and closed:
                rel = rng.choice(closed)
                text = open(os.path.join(root, rel)).read()
                open_docs[rel] = (1, text)
                server.notify("textDocument/didOpen", {"textDocument": {
                    "uri": uri(rel), "languageId": "python", "version": 1, "text": text}})
            elif action == "edit" and open_docs:
                rel = rng.choice(sorted(open_docs))
                version, text = open_docs[rel]
                lines = text.split("\n")
                line = rng.randrange(len(lines))
                if args.steady:
                    # Change one digit in place: same size, new content.
                    digits = [i for i, l in enumerate(lines) if l.endswith("'))")]
                    line = rng.choice(digits) if digits else line
                    old = lines[line]
                    new = old.replace("'))", "x'))") if not old.endswith("x'))") else old.replace("x'))", "'))")
                    rng_range = {"start": {"line": line, "character": 0}, "end": {"line": line, "character": len(old)}}
                    lines[line] = new
                elif rng.random() < 0.7:
                    made += 1
                    new = f"def soak_{made}(x):\n    return x + {made}\n\n"
                    rng_range = {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}
                    lines = lines[:line] + new.split("\n")[:-1] + lines[line:]
                else:
                    end = min(line + rng.randint(1, 3), len(lines) - 1)
                    new = ""
                    rng_range = {"start": {"line": line, "character": 0}, "end": {"line": end, "character": 0}}
                    lines = lines[:line] + lines[end:]
                text = "\n".join(lines)
                open_docs[rel] = (version + 1, text)
                server.notify("textDocument/didChange", {
                    "textDocument": {"uri": uri(rel), "version": version + 1},
                    "contentChanges": [{"range": rng_range, "text": new}]})
            elif action == "save" and open_docs:
                rel = rng.choice(sorted(open_docs))
                with open(os.path.join(root, rel), "w") as f:
                    f.write(open_docs[rel][1])
                server.notify("textDocument/didSave", {"textDocument": {"uri": uri(rel)}})
            elif action == "close" and open_docs:
                rel = rng.choice(sorted(open_docs))
                with open(os.path.join(root, rel), "w") as f:
                    f.write(open_docs.pop(rel)[1])
                server.notify("textDocument/didSave", {"textDocument": {"uri": uri(rel)}})
                server.notify("textDocument/didClose", {"textDocument": {"uri": uri(rel)}})
            elif action == "external" and closed:
                rel = rng.choice(closed)
                made += 1
                if args.steady:
                    path = os.path.join(root, rel)
                    text = open(path).read()
                    flipped = text.replace("retries=3", "retries=4") if "retries=3" in text else text.replace("retries=4", "retries=3")
                    with open(path, "w") as f:
                        f.write(flipped)
                else:
                    with open(os.path.join(root, rel), "a") as f:
                        f.write(f"\n\ndef external_{made}():\n    return {made}\n")
            elif action == "rename" and closed:
                rel = rng.choice(closed)
                made += 1
                os.rename(os.path.join(root, rel), os.path.join(root, "app", f"renamed_{made}.py"))
            elif action == "delete" and len(closed) > 5:
                os.remove(os.path.join(root, rng.choice(closed)))
            elif action == "create":
                made += 1
                with open(os.path.join(root, "app", f"created_{made}.py"), "w") as f:
                    f.write(module(rng.choice(WORDS), 1000 + made))
            elif action == "search":
                request("aurora/search", {"query": f"{rng.choice(WORDS)} step {rng.randrange(6)}"})
            elif action == "ask":
                request("aurora/ask", {"question": f"how is a {rng.choice(WORDS)} value processed?"})
            elif action == "cancel":
                pending = [i for i, m in sent.items() if m == "aurora/ask" and i not in server.responses
                           and i not in cancelled]
                if pending:
                    i = rng.choice(pending)
                    cancelled.add(i)
                    server.notify("$/cancelRequest", {"id": i})
            elif action == "status":
                request("aurora/status", {})
            time.sleep(rng.uniform(0.005, 0.05))

        # Quiesce: save and close every document, let the watcher catch up, reconcile.
        for rel in sorted(open_docs):
            with open(os.path.join(root, rel), "w") as f:
                f.write(open_docs[rel][1])
            server.notify("textDocument/didSave", {"textDocument": {"uri": uri(rel)}})
            server.notify("textDocument/didClose", {"textDocument": {"uri": uri(rel)}})
        open_docs.clear()
        end_wait = time.monotonic() + 120
        for i, method in sorted(sent.items()):
            with server.cond:
                while i not in server.responses and time.monotonic() < end_wait and None not in server.responses:
                    server.cond.wait(1)
        time.sleep(3)
        reindex = request("workspace/executeCommand", {"command": "aurora.reindex", "arguments": [{}]})
        with server.cond:
            while reindex not in server.responses and time.monotonic() < end_wait + 120:
                server.cond.wait(1)
        end_rss = rss_kb(server.proc.pid)

        # Exactly one answer per request.
        answers = server.responses.counts
        for i, method in sorted(sent.items()):
            n = answers.get(i, 0)
            if n != 1:
                failures.append(f"request {i} ({method}) answered {n} times")
            msg = server.responses.get(i)
            if msg and "error" in msg:
                code = msg["error"].get("code")
                allowed = {-32800} if i in cancelled else set()
                allowed |= {-33002, -33003, -33006} if method == "aurora/ask" else set()
                if code not in allowed:
                    failures.append(f"request {i} ({method}) failed: {msg['error']}")
        errors_by_code = {}
        for i, msg in server.responses.items():
            if isinstance(msg, dict) and "error" in msg:
                c = msg["error"].get("code")
                errors_by_code[c] = errors_by_code.get(c, 0) + 1
        server.close()
    except Exception as e:  # the server died or hung
        failures.append(f"soak aborted: {e}")
        if server.proc.poll() is None:
            server.proc.kill()
        start_rss = end_rss = start_chunks = 0
        errors_by_code = {}
        counts = {}
        samples = []
    finally:
        log.close()
        fake.kill()

    with open(log_path) as f:
        server_log = f.read()
    if "panicked" in server_log:
        failures.append("the server log shows a panic:\n" + "\n".join(l for l in server_log.splitlines() if "panick" in l)[:2000])
    db = os.path.join(root, ".aurora", "memory.db")
    conn = sqlite3.connect(db)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    if integrity != "ok":
        failures.append(f"integrity_check: {integrity}")
    cold_db = os.path.join(tmp, "cold.db")
    subprocess.run([args.bin, "--db", cold_db, "index", root], check=True, capture_output=True,
                   env=dict(env, AURORA_LOG="aurora=warn"))
    ours, cold = chunks(db), chunks(cold_db)
    if ours != cold:
        missing = sorted(set(cold) - set(ours))[:5]
        extra = sorted(set(ours) - set(cold))[:5]
        failures.append(f"store differs from a cold index: {len(ours)} vs {len(cold)} chunks; "
                        f"missing {missing}; extra {extra}")
    print(f"soak: {args.minutes:g} min, seed {args.seed}; actions {json.dumps(counts, sort_keys=True)}")
    print(f"soak: {len(sent)} requests, errors by code {json.dumps(errors_by_code)}; {len(cold)} chunks at the end")
    print(f"soak: RSS {start_rss / 1024:.1f} MB after the first index, {end_rss / 1024:.1f} MB at the end")
    print(f"soak: RSS samples (minute, MB): {samples}")
    # SQLite page caches (writer 8 MB, each pooled reader 4 MB) fill as the store grows, so the bound
    # allows 10 kB per chunk of growth on top of 64 MB.
    allowance = 64 * 1024 + 10 * max(0, len(cold) - start_chunks)
    if start_rss and end_rss > start_rss + allowance:
        failures.append(f"RSS grew from {start_rss} kB to {end_rss} kB (allowed {start_rss + allowance} kB)")
    if failures:
        print("soak FAILED:\n- " + "\n- ".join(failures))
        print(f"(workspace and server log kept in {tmp})")
        return 1
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print("soak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

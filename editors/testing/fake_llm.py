#!/usr/bin/env python3
"""A fake OpenAI-compatible chat server for the editor clients' end-to-end tests.

Listens on 127.0.0.1 (ephemeral port unless --port), prints ``PORT <n>`` on stdout (and writes the
port to --port-file), and answers ``POST .../chat/completions`` from the shape of the request, not
from a script tied to one test:

* ``response_format`` with a JSON schema -> a JSON object built from that schema (strings, numbers,
  enums, arrays, nested objects), with text that cites what the prompt showed;
* otherwise a Markdown answer that starts with ANSWER_SENTENCE and cites the first code locations
  found in the prompt (``path.py:12-30`` and chunk ids such as ``k_3f9a1c0d2b7e``);
* a prompt asking for a docstring / tests / a rewrite gets Python code back in a fenced block;
* ``stream: true`` -> Server-Sent Events (``data: {choices:[{delta:{content}}]}`` ... ``[DONE]``)
  with the text in small pieces, ``--chunk-delay-ms`` apart.

Control endpoints for tests: ``GET /_requests`` lists every request seen (body, whether the client
went away mid-stream); ``POST /_control`` with ``{"chunkDelayMs": n}`` changes the stream pace.
Nothing here ever connects anywhere: it only answers on loopback.
"""
import argparse
import json
import os
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The sentence every free-text answer starts with; tests look for it in the editor's answer view.
ANSWER_SENTENCE = "The fake model found the answer in the indexed code."
# The docstring the fake writes when asked to document code; tests look for it in the edited buffer.
DOCSTRING = "Documented by the fake model."

STATE = {"chunk_delay_ms": 20, "requests": [], "lock": threading.Lock(), "log": None, "latency_ms": 0,
         "fail_rate": 0.0, "keep_requests": True}

# `app/config.py:18-21`, `app/config.py:L18-L21`, `app/config.py#L18`, `app/config.py lines 18-21`.
LOCATION_RE = re.compile(r"([A-Za-z0-9_./-]+\.pyi?)(?::L?|#L| \(?lines? )(\d+)(?:\s*[-–]\s*L?(\d+))?")
# `"file": "app/config.py", "start_line": 18, "end_line": 21` as JSON shown in a prompt.
JSON_LOCATION_RE = re.compile(r'"file"\s*:\s*"([^"]+\.pyi?)"\s*,\s*"start_line"\s*:\s*(\d+)\s*,\s*"end_line"\s*:\s*(\d+)')
# `k_3f9a1c0d2b7e`, whatever follows a `chunk_id`/`chunkId`/`id` label, or Aurora's chunk headers
# `[chunk 38c1b6927c037c44] app/auth.py:L5-L8  function  check_token`.
CHUNK_ID_RE = re.compile(
    r"\b(k_[0-9a-f]{6,})\b|\bchunk[ _]?id\b[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_-]+)|\[chunk ([0-9a-f]{16}|buffer:[^\]]+)\]",
    re.I,
)
# Aurora's chunk header with its 1-based location, and the code lines that follow it.
HEADER_RE = re.compile(r"^\[chunk ([^\]]+)\] (\S+?):L(\d+)-L(\d+)  (\S+)  (\S+)\n((?:(?!\[chunk |<<<END).*\n)*)", re.M)
# A code action's target: `Target: app/auth.py:L5-L8 (the selected code).`
TARGET_RE = re.compile(r"Target: (\S+?):L(\d+)-L(\d+)")
DEF_RE = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def prompt_text(body):
    """Every message's text, in order (content may be a string or a list of parts)."""
    parts = []
    for message in body.get("messages", []):
        content = message.get("content", "")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(str(content))
    return "\n".join(parts)


def last_user_text(body):
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content", "")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def cited_locations(text, limit=3):
    """The first distinct `path:line[-end]` locations the prompt mentions."""
    seen, out = set(), []
    matches = sorted(list(LOCATION_RE.finditer(text)) + list(JSON_LOCATION_RE.finditer(text)), key=lambda m: m.start())
    for m in matches:
        key = (m.group(1), m.group(2))
        if key in seen:
            continue
        seen.add(key)
        out.append((m.group(1), int(m.group(2)), int(m.group(3)) if m.group(3) else None))
        if len(out) == limit:
            break
    return out


def chunk_ids(text, limit=3):
    out = []
    for m in CHUNK_ID_RE.finditer(text):
        cid = m.group(1) or m.group(2) or m.group(3)
        if cid.lower() in ("null", "none"):
            continue
        if cid not in out:
            out.append(cid)
        if len(out) == limit:
            break
    return out


def wants_code(text):
    lowered = text.lower()
    for word in ("docstring", "write tests", "unit tests", "refactor", "rewrite"):
        if word in lowered:
            return word
    return None


def code_reply(kind, text):
    """Python code for an editing request: the first def/class of the prompt's code, documented."""
    m = DEF_RE.search(text)
    if kind in ("write tests", "unit tests"):
        name = m.group(3) if m else "subject"
        return f"```python\ndef test_{name.lower()}_fake():\n    assert True  # {DOCSTRING}\n```\n"
    if kind == "docstring":
        indent = (m.group(1) if m else "") + "    "
        return f'```python\n{indent}"""{DOCSTRING}"""\n```\n'
    # A rewrite: give the code back as it was shown, so the edit is well-formed Python.
    fence = re.search(r"```(?:python)?\n(.*?)```", text, re.S)
    return f"```python\n{fence.group(1) if fence else 'pass'}```\n"


def answer_text(body):
    text = prompt_text(body)
    kind = wants_code(last_user_text(body))
    if kind:
        return code_reply(kind, text)
    lines = [ANSWER_SENTENCE, ""]
    locations = cited_locations(text)
    for i, (path, start, end) in enumerate(locations, 1):
        span = f"{start}-{end}" if end else f"{start}"
        lines.append(f"- See `{path}:{span}` [{i}].")
    for cid in chunk_ids(text):
        lines.append(f"- Relevant chunk [{cid}].")
    if not locations and not chunk_ids(text):
        lines.append("No code locations were given in the prompt.")
    return "\n".join(lines) + "\n"


def citation_objects(item_schema, text, root):
    """Citation objects for a schema like {id, chunk_id, file, start_line, end_line}."""
    props = item_schema.get("properties", {})
    locations = cited_locations(text)
    ids = chunk_ids(text)
    count = max(len(locations), len(ids))
    out = []
    for n in range(min(count, 3)):
        obj = {}
        for key, sub in props.items():
            lk = key.lower()
            loc = locations[n] if n < len(locations) else None
            if lk == "id":
                obj[key] = f"c{n + 1}"
            elif lk in ("chunk_id", "chunkid"):
                obj[key] = ids[n] if n < len(ids) else None
            elif lk in ("file", "path"):
                obj[key] = loc[0] if loc else None
            elif lk in ("start_line", "startline"):
                obj[key] = loc[1] if loc else 1
            elif lk in ("end_line", "endline"):
                obj[key] = (loc[2] or loc[1]) if loc else 1
            else:
                obj[key] = from_schema(sub, key, text, root)
        out.append(obj)
    return out


def resolve(schema, root):
    if isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return root.get("$defs", {}).get(ref) or root.get("definitions", {}).get(ref) or {}
    return schema


PASSING_WORDS = ("pass", "approve", "approved", "accept", "ok", "yes", "valid", "good", "high")


def from_schema(schema, name, text, root=None):
    """A JSON value that satisfies `schema` (the subset response_format schemas use)."""
    root = root or schema
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        target = root.get("$defs", {}).get(ref) or root.get("definitions", {}).get(ref) or {}
        return from_schema(target, name, text, root)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema and schema[key]:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return from_schema(options[0], name, text, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        # Reviews should pass: prefer a verdict that reads as approval.
        for value in schema["enum"]:
            if isinstance(value, str) and value.lower() in PASSING_WORDS:
                return value
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {k: from_schema(v, k, text, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        items = resolve(schema.get("items", {}), root)
        count = max(1, schema.get("minItems", 1))
        lowered = name.lower()
        item_props = {k.lower() for k in items.get("properties", {})} if isinstance(items, dict) else set()
        if item_props & {"chunk_id", "chunkid", "file", "start_line"}:
            return citation_objects(items, text, root)
        if lowered in (
            "uncertainties", "open_questions", "warnings", "edits", "issues", "problems", "depends_on",
            "expected_tools", "critical_issues", "minor_issues", "edge_cases", "suggestions", "used_subgoals",
        ) and not schema.get("minItems"):
            return []
        if "citation" in lowered or "source" in lowered or "id" in lowered:
            ids = chunk_ids(text)
            if ids and items.get("type", "string") == "string":
                return ids[: max(count, len(ids))]
        return [from_schema(items, name, text, root) for _ in range(count)]
    if kind in ("number", "integer"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 1)
        value = 0.9 if (low <= 0.9 <= high and kind == "number") else low
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "string":
        lowered = name.lower()
        if lowered == "suggested_agent":
            # The first agent of the catalogue Aurora's planner prompt lists.
            agent = re.search(r"^- ([a-z][a-z0-9-]*): ", text, re.M)
            return agent.group(1) if agent else "llm-executor"
        if lowered in ("description", "goal"):
            question = re.search(r"^Question: (.+)$", text, re.M)
            if question:
                return question.group(1)
        if "id" in lowered and chunk_ids(text):
            return chunk_ids(text)[0]
        if lowered in ("answer", "text", "content", "summary", "response", "output", "result"):
            # Citation markers [c1].. refer to the citation objects built alongside.
            markers = " ".join(f"[c{n + 1}]" for n in range(min(max(len(cited_locations(text)), len(chunk_ids(text)), 1), 3)))
            return f"{ANSWER_SENTENCE} {markers}\n\n" + answer_text({"messages": [{"role": "user", "content": text}]}).split("\n", 2)[-1]
        return f"{name} from the fake model"
    return None


def directed_edits(text):
    """The edit an Aurora code-action agent would propose, from its prompt: a docstring under the
    target's first def/class (documentation-generator), a test file (test-writer), or the target's
    code unchanged (refactoring-engine)."""
    role = re.search(r"Role: agent\.([a-z-]+)", text)
    target = TARGET_RE.search(text)
    if not role or not target:
        return []
    path, first, last = target.group(1), int(target.group(2)), int(target.group(3))
    # The code of the pinned chunk covering the target, with its 1-based first line.
    code, start = None, None
    for h in HEADER_RE.finditer(text):
        if h.group(2) == path and int(h.group(3)) <= first <= int(h.group(4)):
            code, start = h.group(7), int(h.group(3))
            break
    if code is None:
        return []
    lines = code.split("\n")
    if role.group(1) == "documentation-generator":
        for i, line in enumerate(lines):
            m = DEF_RE.match(line)
            if m:
                indent = m.group(1) + "    "
                return [{"kind": "replace", "file": path, "start_line": start + i, "end_line": start + i,
                         "new_text": f'{line}\n{indent}"""{DOCSTRING}"""\n', "description": "add a docstring"}]
        return []
    if role.group(1) == "test-writer":
        m = DEF_RE.search(code)
        name = m.group(3) if m else "subject"
        module = path.rsplit("/", 1)[-1].removesuffix(".py")
        return [{"kind": "create", "file": f"tests/test_{module}.py",
                 "new_text": f"def test_{name.lower()}_fake():\n    assert True  # {DOCSTRING}\n", "description": "tests"}]
    if role.group(1) == "refactoring-engine":
        body = "\n".join(lines[first - start : last - start + 1]) + "\n"
        return [{"kind": "replace", "file": path, "start_line": first, "end_line": last, "new_text": body,
                 "description": "unchanged"}]
    return []


def reply_for(body):
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        text = prompt_text(body)
        value = from_schema(schema, "root", text)
        if isinstance(value, dict) and "edits" in value:
            value["edits"] = directed_edits(text)
        return json.dumps(value)
    if fmt.get("type") == "json_object":
        return json.dumps({"answer": answer_text(body)})
    return answer_text(body)


def pieces(text, size=12):
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test prints /_requests on failure instead
        if STATE["log"]:
            STATE["log"].write((fmt % args) + "\n")
            STATE["log"].flush()

    def _json(self, status, value):
        data = json.dumps(value).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cancelled and closed the connection: expected

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def do_GET(self):
        if self.path.rstrip("/") == "/_requests":
            with STATE["lock"]:
                return self._json(200, STATE["requests"])
        if self.path.rstrip("/").endswith("/models"):
            return self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        return self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = self._body()
        if body is None:
            return self._json(400, {"error": {"message": "body is not JSON"}})
        if self.path.rstrip("/") == "/_control":
            if "chunkDelayMs" in body:
                STATE["chunk_delay_ms"] = int(body["chunkDelayMs"])
            return self._json(200, {"chunkDelayMs": STATE["chunk_delay_ms"]})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        record = {"path": self.path, "body": body if STATE["keep_requests"] else None, "completed": False,
                  "disconnected": False}
        with STATE["lock"]:
            STATE["requests"].append(record)
        if STATE["latency_ms"]:
            time.sleep(random.uniform(0, STATE["latency_ms"]) / 1000)
        if STATE["fail_rate"] and random.random() < STATE["fail_rate"]:
            # Injected failures, as real providers send them.
            if random.random() < 0.5:
                self.send_response(429)
                self.send_header("Retry-After", "0")
                data = json.dumps({"error": {"message": "rate limited (injected)", "type": "rate_limit"}}).encode()
            else:
                self.send_response(500)
                data = json.dumps({"error": {"message": "server error (injected)", "type": "server_error"}}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                record["disconnected"] = True
            record["completed"] = True
            return
        text = reply_for(body)
        model = body.get("model", "fake")
        usage = {"prompt_tokens": max(1, len(prompt_text(body)) // 4), "completion_tokens": max(1, len(text) // 4)}
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": usage,
                },
            )
            record["completed"] = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for piece in pieces(text):
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(STATE["chunk_delay_ms"] / 1000)
            last = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            record["completed"] = True
        except (BrokenPipeError, ConnectionResetError):
            record["disconnected"] = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--chunk-delay-ms", type=int, default=20)
    parser.add_argument("--log", help="append one line per HTTP request to this file")
    parser.add_argument("--latency-ms", type=int, default=0, help="random delay up to this before each reply")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of replies that are 429 or 500")
    parser.add_argument("--forget-bodies", action="store_true", help="keep no request bodies (long soaks)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when the parent closes stdin")
    args = parser.parse_args()
    STATE["chunk_delay_ms"] = args.chunk_delay_ms
    STATE["latency_ms"] = args.latency_ms
    STATE["fail_rate"] = args.fail_rate
    STATE["keep_requests"] = not args.forget_bodies
    if args.log:
        STATE["log"] = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"PORT {port}", flush=True)
    if args.exit_on_stdin_eof:
        # The parent (a test editor) going away closes our stdin: never outlive it.
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())

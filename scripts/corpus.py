#!/usr/bin/env python3
"""Corpus helper shared by scripts/bench-corpus.sh and scripts/eval-retrieval.sh.

Standard library only (Python 3.11).  Sub-commands:

  prepare  download the pinned wheels (PyPI, `pip download`), unpack them into
           $WORK/corpora/<name>, optionally copy the CPython stdlib; print the paths
  stats    count .py files, lines and bytes under a folder
  bench    performance figures of `aurora index` / `aurora search --batch` (spec §7.2)
  eval     retrieval quality on the public question set (spec §8)

The pure parts (corpus statistics, decorator lines, the hit rule, metrics, median and
percentile) are plain functions, tested by scripts/test_corpus.py without the binary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
import ast
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Sequence

# Pinned corpora (spec §7.1 and §8.1). The question file's own "corpus" map wins for eval.
PINNED: dict[str, str] = {"django": "5.2.8", "flask": "3.1.3", "requests": "2.34.2"}
DIFFICULTIES = ("lexical", "paraphrase", "conceptual")
KS = (1, 5, 10)
DEFAULT_TIMEOUT = float(os.environ.get("AURORA_TIMEOUT", "3600"))
# Directories skipped when counting a corpus: what the indexer skips too (spec §2.2, §2.3).
SKIP_DIRS = {"__pycache__", "site-packages", "node_modules"}


class StepError(Exception):
    """A failed step: the scripts print `<prog>: FAILED at <step>: <message>` and exit 1."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


_current_step = ["setup"]


@contextmanager
def step(name: str):
    """Name the step in progress so that any failure inside is reported with it."""
    previous = _current_step[0]
    _current_step[0] = name
    try:
        yield
    except StepError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise StepError(name, f"{type(e).__name__}: {e}") from e
    finally:
        _current_step[0] = previous


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------

def median(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        raise ValueError("median of no values")
    return statistics.median(vals)


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile: the smallest observed value with at least p% of the values
    at or below it (p95 of 100 values = the 95th smallest). Always an observed value."""
    vals = sorted(values)
    if not vals:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile out of range: {p}")
    if p == 0:
        return vals[0]
    rank = math.ceil(p / 100.0 * len(vals))
    return vals[max(rank, 1) - 1]


# ----------------------------------------------------------------------------------------
# Corpora: wheels, unpacking, stdlib copy, statistics
# ----------------------------------------------------------------------------------------

def _norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(wheels_dir: Path, name: str, version: str) -> Path | None:
    """The wheel of name==version in wheels_dir (file name `<dist>-<version>-<tags>.whl`)."""
    if not wheels_dir.is_dir():
        return None
    for p in sorted(wheels_dir.glob("*.whl")):
        parts = p.name.split("-")
        if len(parts) >= 3 and _norm_dist(parts[0]) == _norm_dist(name) and parts[1] == version:
            return p
    return None


def pip_command() -> list[str]:
    env = os.environ.get("PIP")
    return shlex.split(env) if env else [sys.executable, "-m", "pip"]


def download_wheels(wheels_dir: Path, pins: dict[str, str]) -> dict[str, Path]:
    """`pip download` the pinned wheels unless they are already in wheels_dir."""
    with step("download wheels"):
        wheels_dir.mkdir(parents=True, exist_ok=True)
        missing = {n: v for n, v in pins.items() if find_wheel(wheels_dir, n, v) is None}
        if missing:
            specs = [f"{n}=={v}" for n, v in missing.items()]
            cmd = pip_command() + ["download", "--no-deps", "--only-binary=:all:",
                                   "-d", str(wheels_dir)] + specs
            log(f"downloading {' '.join(specs)} (PyPI) ...")
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise StepError("download wheels",
                                f"`{' '.join(cmd)}` exited {p.returncode}\n{_tail(p.stderr or p.stdout)}")
        else:
            log(f"wheels already in {wheels_dir}: skipping download")
        out = {}
        for n, v in pins.items():
            w = find_wheel(wheels_dir, n, v)
            if w is None:
                raise StepError("download wheels", f"no wheel for {n}=={v} in {wheels_dir} after download")
            out[n] = w
        return out


def read_metadata(dist_info: Path) -> dict[str, str]:
    meta: dict[str, str] = {}
    with open(dist_info / "METADATA", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                break  # headers end at the first blank line
            if ":" in line and not line[0].isspace():
                k, v = line.split(":", 1)
                meta.setdefault(k.strip().lower(), v.strip())
    return meta


def unpack_wheel(wheel: Path, dest: Path, name: str, version: str, keep_dist_info: bool = False) -> Path:
    """Unzip `wheel` into `dest` (replaced if present), check *.dist-info/METADATA carries
    `name`/`version`, then remove the dist-info folder (it holds no .py)."""
    with step(f"unpack {wheel.name}"):
        tmp = dest.with_name(dest.name + ".unpacking")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        with zipfile.ZipFile(wheel) as z:
            bad = z.testzip()
            if bad is not None:
                raise StepError(f"unpack {wheel.name}", f"corrupt member {bad}")
            z.extractall(tmp)  # zipfile drops absolute paths and '..' components
        infos = sorted(tmp.glob("*.dist-info"))
        if len(infos) != 1:
            raise StepError(f"unpack {wheel.name}", f"expected one *.dist-info folder, found {len(infos)}")
        meta = read_metadata(infos[0])
        if meta.get("version") != version:
            raise StepError(f"unpack {wheel.name}",
                            f"METADATA says Version: {meta.get('version')!r}, pinned {version}")
        if _norm_dist(meta.get("name", "")) != _norm_dist(name):
            raise StepError(f"unpack {wheel.name}",
                            f"METADATA says Name: {meta.get('name')!r}, expected {name}")
        if not keep_dist_info:
            shutil.rmtree(infos[0])
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        return dest


def stdlib_path() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def copy_stdlib(dest: Path, src: Path | None = None) -> Path:
    """Copy the machine's stdlib (site-packages and __pycache__ excluded) to dest, so the
    store is not written into the system tree. Reused when the stamp matches."""
    src = src or stdlib_path()
    stamp = dest.with_name(dest.name + ".stamp")
    want = f"{src}\n{sys.version}\n"
    with step("copy stdlib"):
        if dest.is_dir() and stamp.exists() and stamp.read_text() == want:
            log(f"stdlib copy already in {dest}: reusing")
            return dest
        log(f"copying {src} -> {dest} (site-packages excluded) ...")
        if dest.exists():
            shutil.rmtree(dest)
        tmp = dest.with_name(dest.name + ".copying")
        if tmp.exists():
            shutil.rmtree(tmp)

        def ignore(d: str, names: list[str]) -> set[str]:
            return {n for n in names if n in ("site-packages", "__pycache__")}

        shutil.copytree(src, tmp, symlinks=True, ignore=ignore)
        tmp.rename(dest)
        stamp.write_text(want)
        return dest


def iter_py_files(root: Path) -> list[Path]:
    """The .py files under root, sorted, skipping hidden folders (.aurora included),
    __pycache__ and site-packages."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        for f in sorted(filenames):
            if f.endswith(".py") and not f.startswith("."):
                p = Path(dirpath) / f
                if p.is_file() and not p.is_symlink():
                    out.append(p)
    return out


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def corpus_stats(root: Path) -> dict[str, Any]:
    files = iter_py_files(root)
    nbytes = lines = decodable = 0
    for p in files:
        data = p.read_bytes()
        nbytes += len(data)
        lines += count_lines(data)
        try:
            data.decode("utf-8")
            decodable += 1
        except UnicodeDecodeError:
            pass
    return {"files": len(files), "decodable": decodable, "lines": lines, "bytes": nbytes,
            "mb": nbytes / 1e6}


_DEF_LINE_RE = re.compile(rb"^[ \t]*(?:async[ \t]+def|def|class)[ \t]", re.M)


def pick_edit_file(root: Path) -> Path:
    """The file the one-file re-index edits: the longest (in lines; ties: path) decodable
    .py file with at least one def/class line per 50 lines (a code file, not a data module
    such as pydoc_data/topics.py) that the indexer will not skip (≤ 1 MiB, average line
    ≤ 150 bytes). Deterministic."""
    best_key = None
    best_path = None
    for p in iter_py_files(root):
        data = p.read_bytes()
        if len(data) > 1024 * 1024 or not data:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        n = count_lines(data)
        if len(data) / max(n, 1) > 150:
            continue
        if len(_DEF_LINE_RE.findall(data)) * 50 < n:
            continue  # a data module (pydoc_data/topics.py), not code
        rel = str(p.relative_to(root))
        key = n
        if best_key is None or key > best_key or (key == best_key and rel < str(best_path.relative_to(root))):
            best_key, best_path = key, p
    if best_path is None:
        raise ValueError(f"no editable .py file under {root}")
    return best_path


def prepare_corpora(work: Path, pins: dict[str, str], stdlib: bool = False) -> dict[str, Path]:
    wheels = download_wheels(work / "wheels", pins) if pins else {}
    corpora: dict[str, Path] = {}
    for name, version in pins.items():
        dest = work / "corpora" / name
        log(f"unpacking {wheels[name].name} -> {dest}")
        corpora[name] = unpack_wheel(wheels[name], dest, name, version)
    if stdlib:
        corpora["stdlib"] = copy_stdlib(work / "corpora" / "stdlib")
    return corpora


# ----------------------------------------------------------------------------------------
# Hit rule (spec §8.2)
# ----------------------------------------------------------------------------------------

_DEF_RE = re.compile(r"^\s*(?:async\s+def|def|class)\s+([A-Za-z_][A-Za-z0-9_]*)")
MAX_DECORATOR_SPAN = 200  # lines scanned above a definition


def _is_decorator_block(lines: Sequence[str], first: int, def_line: int) -> bool:
    """True when lines[first .. def_line-1] (1-based, inclusive) are only decorators, comments
    and blank lines attached to the definition at def_line: checked by parsing them above a
    stub definition with Python's own parser (so multi-line decorators, brackets inside
    strings and comments between decorators are all handled)."""
    def_text = lines[def_line - 1]
    indent = def_text[: len(def_text) - len(def_text.lstrip())]
    block = [l.rstrip("\r\n") for l in lines[first - 1: def_line - 1]]
    src = "\n".join(block + [indent + "def _aurora_stub(): pass"]) + "\n"
    if indent:
        src = "if 1:\n" + src
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return False
    body = tree.body
    if indent:
        if len(body) != 1 or not isinstance(body[0], ast.If):
            return False
        body = body[0].body
    return (len(body) == 1 and isinstance(body[0], ast.FunctionDef)
            and body[0].name == "_aurora_stub" and bool(body[0].decorator_list))


def decorator_start_line(lines: Sequence[str], start_line: int) -> int:
    """First line of the decorators of the definition whose def/class keyword is on
    `start_line` (1-based); `start_line` itself when undecorated. Scans upward from
    start_line-1 over lines whose stripped text starts with '@'; a candidate counts when
    everything from it down to the definition is decorators (multi-line ones included),
    comments or blank lines."""
    if start_line < 1 or start_line > len(lines):
        return start_line
    first = start_line
    lo = max(1, start_line - MAX_DECORATOR_SPAN)
    for j in range(start_line - 1, lo - 1, -1):
        if lines[j - 1].lstrip().startswith("@") and _is_decorator_block(lines, j, start_line):
            first = j
    return first


def decorator_start_in_file(path: Path, start_line: int) -> int:
    text = path.read_text(encoding="utf-8", errors="replace")
    return decorator_start_line(text.splitlines(), start_line)


def check_target(lines: Sequence[str], target: dict) -> str | None:
    """A warning when the target's start_line is not the def/class line of its name."""
    n = target["start_line"]
    if n < 1 or n > len(lines):
        return f"{target['path']}:{n} is past the end of the file ({len(lines)} lines)"
    m = _DEF_RE.match(lines[n - 1])
    want = target["qualname"].split(".")[-1]
    if not m or m.group(1) != want:
        return f"{target['path']}:{n} is not the definition of {want}: {lines[n - 1].strip()[:80]!r}"
    return None


def _norm_path(p: str | None) -> str:
    if p is None:
        return ""
    p = p.replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def result_hits(result: dict, target: dict, deco_start: int | None = None) -> bool:
    """Spec §8.2: same path, and either qualifiedName == qualname, or the chunk starts at
    the target's definition: defLine == start_line, or startLine within
    [first decorator line, start_line]. A chunk that merely contains the target does not hit."""
    if _norm_path(result.get("path")) != _norm_path(target["path"]):
        return False
    if result.get("qualifiedName") == target["qualname"]:
        return True
    start = target["start_line"]
    first = start if deco_start is None else min(deco_start, start)
    if result.get("defLine") == start:
        return True
    sl = result.get("startLine")
    return isinstance(sl, int) and first <= sl <= start


def first_hit(results: Sequence[dict], targets: Sequence[dict],
              deco_starts: Sequence[int | None] | None = None) -> tuple[int | None, int | None]:
    """(1-based rank of the first result hitting any target, index of that target)."""
    if deco_starts is None:
        deco_starts = [None] * len(targets)
    for rank, r in enumerate(results, start=1):
        for ti, (t, d) in enumerate(zip(targets, deco_starts)):
            if result_hits(r, t, d):
                return rank, ti
    return None, None


def metrics(ranks: Sequence[int | None], ks: Sequence[int] = KS) -> dict[str, Any]:
    """recall@k = share of questions whose first hit is at rank ≤ k; MRR = mean of 1/rank
    (0 when nothing hits)."""
    n = len(ranks)
    out: dict[str, Any] = {"n": n}
    for k in ks:
        out[f"recall@{k}"] = (sum(1 for r in ranks if r is not None and r <= k) / n) if n else 0.0
    out["mrr"] = (sum(1.0 / r for r in ranks if r is not None) / n) if n else 0.0
    return out


def grouped_metrics(rows: Sequence[dict], repo_order: Sequence[str]) -> dict[str, Any]:
    """rows: {"repo", "difficulty", "rank"}. Overall, per difficulty, per repo."""
    by_diff: dict[str, Any] = {}
    diffs = list(DIFFICULTIES) + sorted({r["difficulty"] for r in rows} - set(DIFFICULTIES))
    for d in diffs:
        sel = [r["rank"] for r in rows if r["difficulty"] == d]
        if sel:
            by_diff[d] = metrics(sel)
    by_repo: dict[str, Any] = {}
    repos = list(repo_order) + sorted({r["repo"] for r in rows} - set(repo_order))
    for rp in repos:
        sel = [r["rank"] for r in rows if r["repo"] == rp]
        if sel:
            by_repo[rp] = metrics(sel)
    return {"overall": metrics([r["rank"] for r in rows]), "byDifficulty": by_diff, "byRepo": by_repo}


# ----------------------------------------------------------------------------------------
# Running the binary
# ----------------------------------------------------------------------------------------

def _tail(text: str, n: int = 20) -> str:
    lines = (text or "").strip().splitlines()
    return "\n".join("    " + l for l in lines[-n:]) if lines else "    (no output)"


def run(cmd: list[str], what: str, rss: bool = False, timeout: float = DEFAULT_TIMEOUT,
        cwd: Path | None = None) -> dict[str, Any]:
    """Run cmd; wall time in ms; peak RSS (KB) via `/usr/bin/time -f %M` when rss.
    Raises StepError on a non-zero exit or a timeout."""
    full = list(cmd)
    rss_file = None
    if rss:
        if not os.access("/usr/bin/time", os.X_OK):
            raise StepError(what, "/usr/bin/time is needed for the peak RSS (apt-get install time)")
        fd, rss_file = tempfile.mkstemp(prefix="aurora-rss-")
        os.close(fd)
        full = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + full
    t0 = time.perf_counter()
    try:
        p = subprocess.run(full, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise StepError(what, f"`{shlex.join(cmd)}` timed out after {timeout:.0f} s")
    except OSError as e:
        raise StepError(what, f"cannot run `{shlex.join(cmd)}`: {e}")
    wall_ms = (time.perf_counter() - t0) * 1000.0
    rss_kb = None
    if rss_file:
        try:
            txt = Path(rss_file).read_text().strip().splitlines()
            rss_kb = int(txt[-1]) if txt and txt[-1].strip().isdigit() else None
        finally:
            os.unlink(rss_file)
    if p.returncode != 0:
        raise StepError(what, f"`{shlex.join(cmd)}` exited {p.returncode}\n"
                              f"  stderr:\n{_tail(p.stderr)}\n  stdout:\n{_tail(p.stdout, 5)}")
    return {"stdout": p.stdout, "stderr": p.stderr, "wallMs": wall_ms, "rssKb": rss_kb}


def parse_json_object(text: str, what: str) -> dict:
    text = text.strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        # tolerate stray lines before the object: take the last line that parses
        obj = None
        for line in reversed(text.splitlines()):
            try:
                obj = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        if obj is None:
            raise StepError(what, f"stdout is not JSON:\n{_tail(text, 5)}")
    if not isinstance(obj, dict):
        raise StepError(what, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_json_lines(text: str, what: str) -> list[dict]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise StepError(what, f"line {i} of stdout is not JSON ({e}): {line[:200]!r}")
        if not isinstance(obj, dict):
            raise StepError(what, f"line {i} of stdout is not a JSON object")
        out.append(obj)
    return out


def store_dir(root: Path) -> Path:
    return root / ".aurora"


def db_path(root: Path) -> Path:
    return store_dir(root) / "memory.db"


def fresh_store(root: Path) -> None:
    sd = store_dir(root)
    if sd.exists():
        shutil.rmtree(sd)


def aurora_index(binary: str, root: Path, what: str, rss: bool = False) -> dict[str, Any]:
    r = run([binary, "index", str(root), "--json"], what, rss=rss)
    summary = parse_json_object(r["stdout"], what)
    for key in ("filesSeen", "indexed", "totalChunks"):
        if key not in summary:
            raise StepError(what, f"index summary has no {key!r}: {r['stdout'][:300]!r}")
    r["summary"] = summary
    return r


def aurora_search_batch(binary: str, db: Path, queries: Sequence[str], what: str,
                        limit: int | None = None, max_per_file: int | None = None,
                        workdir: Path | None = None) -> dict[str, Any]:
    for q in queries:
        if "\n" in q or "\r" in q or not q.strip():
            raise StepError(what, f"a batch query must be one non-empty line: {q!r}")
    fd, qfile = tempfile.mkstemp(prefix="aurora-queries-", suffix=".txt",
                                 dir=str(workdir) if workdir else None)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(q + "\n" for q in queries))
    try:
        cmd = [binary, "search", "--batch", qfile, "--db", str(db)]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        if max_per_file is not None:
            cmd += ["--max-per-file", str(max_per_file)]
        cmd += ["--json"]
        # run from the store's workspace root, so that root discovery agrees with --db
        r = run(cmd, what, cwd=db.parent.parent if db.parent.name == ".aurora" else None)
    finally:
        os.unlink(qfile)
    answers = parse_json_lines(r["stdout"], what)
    if len(answers) != len(queries):
        raise StepError(what, f"{len(queries)} queries but {len(answers)} JSON lines on stdout")
    for i, (q, a) in enumerate(zip(queries, answers), start=1):
        if "results" not in a or not isinstance(a["results"], list):
            raise StepError(what, f"answer {i} has no results list: {json.dumps(a)[:200]}")
        if a.get("query") is not None and a["query"].strip() != q.strip():
            raise StepError(what, f"answer {i} is for {a['query']!r}, expected {q!r} (order mismatch)")
    r["answers"] = answers
    return r


# ----------------------------------------------------------------------------------------
# Machine description
# ----------------------------------------------------------------------------------------

def machine_info(repo_root: Path | None, binary: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        info["nproc"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["nproc"] = os.cpu_count()
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memTotalMb"] = int(mem[1]) // 1024
    except (OSError, IndexError, ValueError):
        pass
    info["kernel"] = os.uname().release
    info["python"] = sys.version.split()[0]
    rev = "unknown"
    if repo_root is not None:
        g = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "--short=12", "HEAD"],
                           capture_output=True, text=True)
        if g.returncode == 0:
            rev = g.stdout.strip()
        else:
            rev = "no-commit"
        s = subprocess.run(["git", "-C", str(repo_root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
        if s.returncode == 0 and s.stdout.strip():
            rev += "+dirty"
    info["gitRev"] = rev
    if binary:
        info["binary"] = binary
        info["profile"] = "debug" if "/debug/" in binary else ("release" if "/release/" in binary else "unknown")
        try:
            v = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
            if v.returncode == 0:
                info["binaryVersion"] = v.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def print_machine(info: dict[str, Any]) -> None:
    print(f"machine: {info['nproc']} cores ({info['cpu']}), "
          f"{info.get('memTotalMb', '?')} MB RAM, Linux {info['kernel']}, Python {info['python']}")
    line = f"aurora:  git {info['gitRev']}"
    if "binary" in info:
        line += f", {info['binary']} ({info['profile']})"
    if "binaryVersion" in info:
        line += f", {info['binaryVersion']}"
    print(line)
    if info.get("profile") == "debug":
        print("WARNING: debug build: these figures are not comparable with the release budgets of spec §7.2")


# ----------------------------------------------------------------------------------------
# bench
# ----------------------------------------------------------------------------------------

def _probe_function(i: int) -> str:
    return (f"\n\ndef aurora_bench_probe_{i}(value, factor={i}):\n"
            f"    \"\"\"Added by scripts/bench-corpus.sh; removed again after the run.\"\"\"\n"
            f"    return value * factor\n")


def parse_floor_supported(binary: str) -> tuple[bool, str]:
    try:
        p = subprocess.run([binary, "debug", "parse-floor", "--help"], capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False, ""
    return p.returncode == 0, p.stdout + p.stderr


def _reported_total(runs_: list[dict]) -> float | None:
    """Median of the binary's own timingsMs.total (None when it does not report it)."""
    vals = [r["summary"].get("timingsMs", {}).get("total") for r in runs_]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return median(vals) if vals else None


def bench_corpus(binary: str, name: str, root: Path, runs: int, queries: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {"name": name, "path": str(root)}
    with step(f"{name}: count files"):
        res.update(corpus_stats(root))
    log(f"[{name}] {res['files']} .py files, {res['lines']:,} lines, {res['mb']:.2f} MB")
    warnings: list[str] = []

    # Warm the page cache (and check the binary works) with one untimed index.
    with step(f"{name}: warm-up index"):
        fresh_store(root)
        log(f"[{name}] warm-up index (untimed) ...")
        aurora_index(binary, root, f"{name}: warm-up index")

    cold = []
    for i in range(runs):
        what = f"{name}: cold index run {i + 1}/{runs}"
        with step(what):
            fresh_store(root)
            r = aurora_index(binary, root, what, rss=True)
        log(f"[{name}] cold index {i + 1}/{runs}: {r['wallMs']:.0f} ms, {r['rssKb']} KB peak RSS")
        cold.append(r)
    last = cold[-1]["summary"]
    walls = [r["wallMs"] for r in cold]
    cold_ms = median(walls)
    timings = [r["summary"].get("timingsMs", {}) for r in cold]
    phase_keys = sorted({k for t in timings for k in t})
    res["cold"] = {
        "wallMsMedian": cold_ms, "wallMsMin": min(walls), "wallMsMax": max(walls), "wallMs": walls,
        "timingsMsMedian": {k: median(t[k] for t in timings if k in t) for k in phase_keys},
        "filesPerSec": res["files"] / (cold_ms / 1000.0),
        "mbPerSec": res["mb"] / (cold_ms / 1000.0),
        "peakRssKb": max(r["rssKb"] for r in cold if r["rssKb"] is not None) if any(
            r["rssKb"] is not None for r in cold) else None,
        "peakRssKbAll": [r["rssKb"] for r in cold],
        "summary": last,
    }
    res["chunks"] = last.get("totalChunks")
    if last.get("indexed", 0) == 0:
        raise StepError(f"{name}: cold index", f"the index run indexed no file: {json.dumps(last)[:300]}")

    # Store size right after the last cold index.
    with step(f"{name}: store size"):
        db = db_path(root)
        if not db.exists():
            raise StepError(f"{name}: store size", f"no store at {db} after `aurora index`")
        wal = db.with_name(db.name + "-wal")
        db_bytes = db.stat().st_size
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        res["store"] = {"dbBytes": db_bytes, "walBytes": wal_bytes, "totalBytes": db_bytes + wal_bytes,
                        "reportedStoreBytes": last.get("storeBytes"),
                        "bytesPerChunk": (db_bytes + wal_bytes) / res["chunks"] if res["chunks"] else None}

    # Re-index with nothing changed.
    nochange = []
    for i in range(runs):
        what = f"{name}: re-index unchanged {i + 1}/{runs}"
        with step(what):
            r = aurora_index(binary, root, what)
        nochange.append(r)
        if r["summary"].get("indexed", 0) != 0:
            warnings.append(f"re-index with nothing changed indexed {r['summary']['indexed']} file(s) (run {i + 1})")
    nc_walls = [r["wallMs"] for r in nochange]
    res["reindexUnchanged"] = {"wallMsMedian": median(nc_walls), "wallMs": nc_walls,
                               "reportedTotalMsMedian": _reported_total(nochange),
                               "summary": nochange[-1]["summary"]}
    log(f"[{name}] re-index unchanged: {median(nc_walls):.0f} ms")

    # Re-index after appending a function to one file (restored after each run).
    with step(f"{name}: pick the file to edit"):
        edit = pick_edit_file(root)
    rel = str(edit.relative_to(root))
    original = edit.read_bytes()
    onefile = []
    try:
        for i in range(runs):
            what = f"{name}: re-index after editing {rel} ({i + 1}/{runs})"
            with step(what):
                edit.write_bytes(original + (b"" if original.endswith(b"\n") else b"\n")
                                 + _probe_function(i + 1).encode())
                r = aurora_index(binary, root, what)
                onefile.append(r)
                s = r["summary"]
                if s.get("indexed") != 1:
                    warnings.append(f"re-index after editing one file indexed {s.get('indexed')} file(s) (run {i + 1})")
                if (s.get("chunks") or {}).get("inserted", 0) < 1:
                    warnings.append(f"re-index after editing one file inserted no chunk (run {i + 1})")
                edit.write_bytes(original)
                aurora_index(binary, root, f"{name}: re-index after restoring {rel}")
    finally:
        if edit.read_bytes() != original:
            edit.write_bytes(original)
    of_walls = [r["wallMs"] for r in onefile]
    res["reindexOneFile"] = {"file": rel, "fileLines": count_lines(original), "wallMsMedian": median(of_walls),
                             "reportedTotalMsMedian": _reported_total(onefile),
                             "wallMs": of_walls, "summary": onefile[-1]["summary"]}
    log(f"[{name}] re-index one file ({rel}): {median(of_walls):.0f} ms")

    # Search latency: the in-process tookMs of each query of one --batch process; one warm-up
    # batch first, the second batch is measured.
    with step(f"{name}: search --batch"):
        aurora_search_batch(binary, db_path(root), queries, f"{name}: search --batch (warm-up)")
        r = aurora_search_batch(binary, db_path(root), queries, f"{name}: search --batch")
        took = []
        for i, a in enumerate(r["answers"], start=1):
            if not isinstance(a.get("tookMs"), (int, float)):
                raise StepError(f"{name}: search --batch", f"answer {i} has no numeric tookMs")
            took.append(float(a["tookMs"]))
        empty = sum(1 for a in r["answers"] if not a["results"])
        res["search"] = {"queries": len(queries), "p50Ms": percentile(took, 50), "p95Ms": percentile(took, 95),
                         "maxMs": max(took), "meanMs": sum(took) / len(took), "batchWallMs": r["wallMs"],
                         "emptyResults": empty, "partial": sum(1 for a in r["answers"] if a.get("partial"))}
    log(f"[{name}] search p50 {res['search']['p50Ms']:.2f} ms, p95 {res['search']['p95Ms']:.2f} ms")

    # Bare tree-sitter parse floor, when the binary offers it.
    ok, help_text = parse_floor_supported(binary)
    if ok:
        use_json = "--json" in help_text
        floors = []
        for i in range(runs):
            what = f"{name}: debug parse-floor {i + 1}/{runs}"
            with step(what):
                cmd = [binary, "debug", "parse-floor", str(root)] + (["--json"] if use_json else [])
                floors.append(run(cmd, what))
        pf: dict[str, Any] = {"wallMsMedian": median(f["wallMs"] for f in floors)}
        outs = []
        for f in floors:
            out = f["stdout"].strip()
            try:
                outs.append(json.loads(out))
            except json.JSONDecodeError:
                outs.append(out.splitlines()[-1] if out else "")
        pf["output"] = outs[-1]
        # the binary's own figures when it prints JSON ({"parseMs", "mbPerSec", ...}),
        # else the wall time of the process
        own = [o for o in outs if isinstance(o, dict)]
        pf["parseMsMedian"] = (median(o["parseMs"] for o in own) if own and all("parseMs" in o for o in own)
                               else pf["wallMsMedian"])
        pf["mbPerSecMedian"] = (median(o["mbPerSec"] for o in own) if own and all("mbPerSec" in o for o in own)
                                else res["mb"] / (pf["parseMsMedian"] / 1000.0))
        res["parseFloor"] = pf
    else:
        res["parseFloor"] = None
    res["warnings"] = warnings
    for w in warnings:
        log(f"[{name}] WARNING: {w}")
    return res


def _fmt_int(v: Any) -> str:
    return "-" if v is None else f"{int(v):,}"


def _fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def bench_table(results: list[dict], runs: int) -> str:
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn) -> None:
        vals = []
        for r in results:
            try:
                vals.append(fn(r))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("-")
        rows.append((label, vals))

    add("files (.py)", lambda r: _fmt_int(r["files"]))
    add("lines", lambda r: _fmt_int(r["lines"]))
    add("MB", lambda r: _fmt(r["mb"], ".2f"))
    add("files indexed / seen", lambda r: f"{r['cold']['summary']['indexed']}/{r['cold']['summary']['filesSeen']}")
    add("skipped", lambda r: ",".join(f"{k}={v}" for k, v in sorted((r["cold"]["summary"].get("skipped") or {}).items())) or "0")
    add(f"cold index ms (median of {runs})", lambda r: _fmt(r["cold"]["wallMsMedian"], ".0f"))
    add("  min-max ms", lambda r: f"{r['cold']['wallMsMin']:.0f}-{r['cold']['wallMsMax']:.0f}")
    for phase in ("walk", "readHash", "parse", "write", "total"):
        add(f"  reported {phase} ms", lambda r, p=phase: _fmt(r["cold"]["timingsMsMedian"].get(p), ".0f"))
    add("files/s", lambda r: _fmt(r["cold"]["filesPerSec"], ",.0f"))
    add("MB/s", lambda r: _fmt(r["cold"]["mbPerSec"], ".2f"))
    add("chunks", lambda r: _fmt_int(r["chunks"]))
    add("peak RSS MB (cold index)", lambda r: _fmt(r["cold"]["peakRssKb"] / 1024, ".1f"))
    add(f"re-index unchanged ms (median of {runs})", lambda r: _fmt(r["reindexUnchanged"]["wallMsMedian"], ".0f"))
    add("  reported total ms", lambda r: _fmt(r["reindexUnchanged"]["reportedTotalMsMedian"], ".0f"))
    add(f"re-index 1 file ms (median of {runs})", lambda r: _fmt(r["reindexOneFile"]["wallMsMedian"], ".0f"))
    add("  reported total ms ", lambda r: _fmt(r["reindexOneFile"]["reportedTotalMsMedian"], ".0f"))
    add("  edited file lines", lambda r: _fmt_int(r["reindexOneFile"]["fileLines"]))
    add("store MB (db + wal)", lambda r: f"{r['store']['totalBytes'] / 1e6:.2f} ({r['store']['dbBytes'] / 1e6:.2f} + {r['store']['walBytes'] / 1e6:.2f})")
    add("store bytes/chunk", lambda r: _fmt(r["store"]["bytesPerChunk"], ",.0f"))
    add("search p50 ms", lambda r: _fmt(r["search"]["p50Ms"], ".2f"))
    add("search p95 ms", lambda r: _fmt(r["search"]["p95Ms"], ".2f"))
    add("search max ms", lambda r: _fmt(r["search"]["maxMs"], ".2f"))
    add("queries with no result", lambda r: f"{r['search']['emptyResults']}/{r['search']['queries']}")
    add("parse floor ms (debug parse-floor)", lambda r: "n/a" if r["parseFloor"] is None else _fmt(r["parseFloor"]["parseMsMedian"], ".0f"))
    add("parse floor MB/s", lambda r: "n/a" if r["parseFloor"] is None else _fmt(r["parseFloor"]["mbPerSecMedian"], ".2f"))

    header = ["corpus"] + [r["name"] for r in results]
    width0 = max(len(header[0]), *(len(l) for l, _ in rows))
    widths = [max(len(header[i + 1]), *(len(v[i]) for _, v in rows)) for i in range(len(results))]
    out = [header[0].ljust(width0) + "".join("  " + h.rjust(w) for h, w in zip(header[1:], widths))]
    out.append("-" * len(out[0]))
    for label, vals in rows:
        out.append(label.ljust(width0) + "".join("  " + v.rjust(w) for v, w in zip(vals, widths)))
    return "\n".join(out)


def cmd_bench(args: argparse.Namespace) -> int:
    work = Path(args.work).resolve()
    info = machine_info(Path(args.root) if args.root else None, args.bin)
    print_machine(info)
    print(f"work dir: {work}; runs: {args.runs}; queries: {args.queries}")
    sys.stdout.flush()
    if args.runs < 1:
        raise StepError("arguments", "--runs must be ≥ 1")
    with step("read queries"):
        queries = [q.strip() for q in Path(args.queries).read_text(encoding="utf-8").splitlines()
                   if q.strip() and not q.startswith("#")]
    if not queries:
        raise StepError("read queries", f"no query in {args.queries}")
    pins = dict(PINNED)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if only:
        unknown = set(only) - set(pins) - {"stdlib"}
        if unknown:
            raise StepError("arguments", f"unknown corpus in --only: {', '.join(sorted(unknown))}")
        pins = {k: v for k, v in pins.items() if k in only}
    want_stdlib = args.stdlib or (only is not None and "stdlib" in only)
    corpora = prepare_corpora(work, pins, stdlib=want_stdlib)
    results = []
    for name, root in corpora.items():
        results.append(bench_corpus(args.bin, name, root, args.runs, queries))
    print()
    print(bench_table(results, args.runs))
    print("\nedited file (re-index 1 file): " + ", ".join(
        f"{r['name']}: {r['reindexOneFile']['file']}" for r in results))
    notes = [f"{r['name']}: {w}" for r in results for w in r["warnings"]]
    if notes:
        print("\nwarnings:")
        for n in notes:
            print(f"  {n}")
    print("\ntimes are wall clock of the whole `aurora index PATH --json` process (warm page cache, fresh "
          "store for cold runs); 'reported' = the binary's own timingsMs (median); search latency is the in-process tookMs of each query of one "
          "`aurora search --batch` process (second of two batches); p95 = nearest rank.")
    if args.json:
        doc = {"machine": info, "runs": args.runs, "workDir": str(work), "queriesFile": str(args.queries),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "corpora": {r["name"]: r for r in results}}
        with step("write --json"):
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


# ----------------------------------------------------------------------------------------
# eval
# ----------------------------------------------------------------------------------------

def load_questions(path: Path) -> dict[str, Any]:
    with step("read questions"):
        doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "questions" not in doc or "corpus" not in doc:
        raise StepError("read questions", f"{path}: expected an object with 'corpus' and 'questions'")
    seen = set()
    for q in doc["questions"]:
        for key in ("id", "repo", "question", "expected", "difficulty"):
            if key not in q:
                raise StepError("read questions", f"question {q.get('id', '?')} has no {key!r}")
        if q["id"] in seen:
            raise StepError("read questions", f"duplicate question id {q['id']}")
        seen.add(q["id"])
        if q["repo"] not in doc["corpus"]:
            raise StepError("read questions", f"question {q['id']}: repo {q['repo']!r} not in 'corpus'")
        if "\n" in q["question"] or not q["question"].strip():
            raise StepError("read questions", f"question {q['id']} must be one non-empty line")
        for t in q["expected"]:
            for key in ("path", "qualname", "start_line"):
                if key not in t:
                    raise StepError("read questions", f"question {q['id']}: a target has no {key!r}")
    return doc


def _describe(r: dict | None) -> str:
    if not r:
        return "(no result)"
    return f"{r.get('path')}:{r.get('startLine')} {r.get('qualifiedName')} ({r.get('kind')})"


def evaluate(questions: list[dict], answers_by_id: dict[str, dict], decos: dict[str, list[int]],
             repo_order: Sequence[str]) -> dict[str, Any]:
    rows = []
    for q in questions:
        results = answers_by_id[q["id"]]["results"]
        rank, ti = first_hit(results, q["expected"], decos[q["id"]])
        top = results[0] if results else None
        rows.append({
            "id": q["id"], "repo": q["repo"], "difficulty": q["difficulty"], "rank": rank,
            "hitTarget": None if ti is None else q["expected"][ti]["qualname"],
            "top": None if top is None else {k: top.get(k) for k in
                                             ("path", "qualifiedName", "kind", "startLine", "defLine", "score")},
            "topHits": bool(results) and any(result_hits(results[0], t, d) for t, d in
                                             zip(q["expected"], decos[q["id"]])),
            "results": len(results),
            "partial": bool(answers_by_id[q["id"]].get("partial")),
        })
    out = grouped_metrics(rows, repo_order)
    out["questions"] = rows
    return out


def _metrics_line(label: str, m: dict, width: int) -> str:
    return (f"{label.ljust(width)}  {m['n']:>3}  {m['recall@1']:>5.3f}  {m['recall@5']:>5.3f}  "
            f"{m['recall@10']:>5.3f}  {m['mrr']:>5.3f}")


def eval_report(runs: dict[str, dict], order: list[str]) -> str:
    out = []
    labels = {"default": "default (max-per-file default)", "maxPerFile0": "--max-per-file 0 (diagnosis)"}
    for key in order:
        res = runs[key]
        out.append(f"== {labels.get(key, key)}")
        groups = [("overall", res["overall"])]
        groups += [(f"difficulty {d}", m) for d, m in res["byDifficulty"].items()]
        groups += [(f"repo {r}", m) for r, m in res["byRepo"].items()]
        w = max(len(g) for g, _ in groups)
        out.append(f"{'':{w}}    n    R@1    R@5   R@10    MRR")
        for g, m in groups:
            out.append(_metrics_line(g, m, w))
        out.append("")
    # per question: both runs side by side, top result of the default run
    first = runs[order[0]]["questions"]
    others = [{r["id"]: r for r in runs[k]["questions"]} for k in order[1:]]
    heads = ["rank"] + ["rank0" if k == "maxPerFile0" else f"rank[{k}]" for k in order[1:]]
    out.append(f"{'id':<4} {'repo':<9} {'difficulty':<10} " + " ".join(f"{h:>5}" for h in heads)
               + "  top result (default run)")
    for r in first:
        ranks = [r["rank"]] + [o[r["id"]]["rank"] for o in others]
        rk = " ".join(f"{('-' if x is None else str(x)):>5}" for x in ranks)
        mark = " [hit]" if r["topHits"] else ""
        top = _describe(r["top"]) if r["top"] else "(no result)"
        out.append(f"{r['id']:<4} {r['repo']:<9} {r['difficulty']:<10} {rk}  {top}{mark}")
    out.append("rank = 1-based rank of the first result hitting any target (- = none in the returned list)")
    return "\n".join(out)


def cmd_eval(args: argparse.Namespace) -> int:
    work = Path(args.work).resolve()
    qpath = Path(args.questions).resolve()
    if not qpath.is_file():
        raise StepError("read questions", f"no question file at {qpath} (use --questions FILE)")
    doc = load_questions(qpath)
    questions = doc["questions"]
    pins = {k: str(v) for k, v in doc["corpus"].items()}
    used = [r for r in pins if any(q["repo"] == r for q in questions)]
    info = machine_info(Path(args.root) if args.root else None, args.bin)
    print_machine(info)
    print(f"questions: {qpath} ({len(questions)}), corpora: "
          + ", ".join(f"{r} {pins[r]}" for r in used) + f", limit {args.limit}")
    sys.stdout.flush()
    corpora = prepare_corpora(work, {r: pins[r] for r in used})

    # Decorator ranges of every target, read from the unpacked files.
    decos: dict[str, list[int]] = {}
    target_warnings = []
    with step("read targets"):
        cache: dict[tuple[str, str], list[str]] = {}
        for q in questions:
            ds = []
            for t in q["expected"]:
                key = (q["repo"], t["path"])
                if key not in cache:
                    f = corpora[q["repo"]] / t["path"]
                    if not f.is_file():
                        raise StepError("read targets", f"question {q['id']}: target file {f} does not exist")
                    cache[key] = f.read_text(encoding="utf-8", errors="replace").splitlines()
                lines = cache[key]
                w = check_target(lines, t)
                if w:
                    target_warnings.append(f"{q['id']}: {w}")
                ds.append(decorator_start_line(lines, t["start_line"]))
            decos[q["id"]] = ds

    configs = [("default", None), ("maxPerFile0", 0)]
    answers: dict[str, dict[str, dict]] = {k: {} for k, _ in configs}
    index_info = {}
    for repo in used:
        root = corpora[repo]
        with step(f"{repo}: index"):
            fresh_store(root)
            log(f"[{repo}] indexing {root} (fresh store) ...")
            r = aurora_index(args.bin, root, f"{repo}: index")
            s = r["summary"]
            index_info[repo] = {"filesSeen": s.get("filesSeen"), "indexed": s.get("indexed"),
                                "totalChunks": s.get("totalChunks"), "skipped": s.get("skipped")}
            if not s.get("indexed"):
                raise StepError(f"{repo}: index", "no file indexed")
        qs = [q for q in questions if q["repo"] == repo]
        for key, mpf in configs:
            what = f"{repo}: search --batch ({key})"
            with step(what):
                log(f"[{repo}] {len(qs)} questions, {key} ...")
                b = aurora_search_batch(args.bin, db_path(root), [q["question"] for q in qs], what,
                                        limit=args.limit, max_per_file=mpf)
            for q, a in zip(qs, b["answers"]):
                answers[key][q["id"]] = a

    runs = {key: evaluate(questions, answers[key], decos, used) for key, _ in configs}
    print()
    print(eval_report(runs, [k for k, _ in configs]))
    if target_warnings:
        print("\ntarget warnings (question file vs unpacked corpus):")
        for w in target_warnings:
            print(f"  {w}")
    if any(r["partial"] for run_ in runs.values() for r in run_["questions"]):
        print("\nnote: some answers were marked partial")
    if args.json:
        doc_out = {
            "questionsFile": str(qpath),
            "questionsSha256": hashlib.sha256(qpath.read_bytes()).hexdigest(),
            "corpus": {r: pins[r] for r in used},
            "limit": args.limit,
            "gitRev": info["gitRev"],
            "index": index_info,
            "runs": {"default": {"maxPerFile": "default", **runs["default"]},
                     "maxPerFile0": {"maxPerFile": 0, **runs["maxPerFile0"]}},
            "targetWarnings": target_warnings,
        }
        with step("write --json"):
            Path(args.json).write_text(json.dumps(doc_out, indent=2, sort_keys=False) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


# ----------------------------------------------------------------------------------------
# prepare / stats
# ----------------------------------------------------------------------------------------

def cmd_prepare(args: argparse.Namespace) -> int:
    corpora = prepare_corpora(Path(args.work).resolve(), dict(PINNED), stdlib=args.stdlib)
    for name, root in corpora.items():
        print(f"{name}\t{root}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    for p in args.paths:
        s = corpus_stats(Path(p))
        print(f"{p}: {s['files']} .py files ({s['decodable']} UTF-8), {s['lines']:,} lines, {s['mb']:.2f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(prog="corpus.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--work", default=os.environ.get("WORK", "/tmp/aurora-bench"),
                       help="work dir for wheels, corpora and stores (default $WORK or /tmp/aurora-bench)")

    p = sub.add_parser("prepare", help="download and unpack the corpora")
    common(p)
    p.add_argument("--stdlib", action="store_true", help="also copy the machine's stdlib")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("stats", help="count .py files, lines and MB")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("bench", help="performance figures (bench-corpus.sh)",
                       description="Performance figures of aurora index / search (spec §7.2).")
    common(p)
    p.add_argument("--bin", required=True, help="the aurora binary")
    p.add_argument("--root", help="the repository (for its git revision)")
    p.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "5")),
                   help="runs per timed figure (default $RUNS or 5)")
    p.add_argument("--stdlib", action="store_true", help="add the machine's CPython stdlib (tests included)")
    p.add_argument("--only", help="comma-separated corpora: django,flask,requests,stdlib")
    p.add_argument("--queries", default=str(here / "queries.txt"), help="one search query per line")
    p.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", help="retrieval evaluation (eval-retrieval.sh)",
                       description="Retrieval quality on the public question set (spec §8).")
    common(p)
    p.add_argument("--bin", required=True, help="the aurora binary")
    p.add_argument("--root", help="the repository (for its git revision)")
    p.add_argument("--questions", default=str(here.parent.parent / "shared" / "data" / "retrieval-eval-public.json"),
                   help="question file (default: <repo>/../shared/data/retrieval-eval-public.json)")
    p.add_argument("--limit", type=int, default=100, help="results asked per question (spec §8.2: 100)")
    p.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    p.set_defaults(func=cmd_eval)

    args = ap.parse_args(argv)
    prog = {"bench": "bench-corpus", "eval": "eval-retrieval"}.get(args.cmd, "corpus.py")
    try:
        return args.func(args)
    except StepError as e:
        sys.stdout.flush()
        print(f"{prog}: FAILED at {e.step}: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an unexpected answer: still a clear, non-zero failure
        import traceback
        traceback.print_exc()
        print(f"{prog}: FAILED (unexpected {type(e).__name__}): {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

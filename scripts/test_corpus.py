"""Unit tests of scripts/corpus.py that need neither the aurora binary nor the network.

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""

from __future__ import annotations

import ast
import io
import json
import sys
import tempfile
import textwrap
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

SOURCE = textwrap.dedent('''\
    import functools


    class Paginator:                                   # 4
        """Pages."""

        def __init__(self, items):                     # 7
            self.items = items

        @property                                      # 10
        def count(self):                               # 11
            return len(self.items)

        @functools.lru_cache(                          # 14
            maxsize=None,  # a comment with ) inside
            typed=")",
        )
        # a comment between decorators
        @staticmethod                                  # 19
        def validate_number(number):                   # 20
            return int(number)


    def plain():                                       # 24
        return 1
    @functools.wraps(plain)                            # 26
    def wrapped():                                     # 27
        """Directly after another function."""
        return 2


    x = [
        1,
    ]
    def after_list():                                  # 35
        pass
''')
LINES = SOURCE.splitlines()


def target(qualname: str, start: int, path: str = "pkg/paginator.py") -> dict:
    return {"path": path, "qualname": qualname, "kind": "method", "start_line": start, "end_line": start + 2}


def result(qualname: str, start: int, def_line: int | None = None, path: str = "pkg/paginator.py",
           kind: str = "method") -> dict:
    return {"path": path, "qualifiedName": qualname, "kind": kind, "startLine": start,
            "endLine": start + 3, "defLine": start if def_line is None else def_line, "score": 1.0}


class DecoratorLines(unittest.TestCase):
    def test_fixture_line_numbers(self):
        for n, word in [(4, "class Paginator"), (11, "def count"), (20, "def validate_number"),
                        (24, "def plain"), (27, "def wrapped"), (35, "def after_list")]:
            self.assertIn(word, LINES[n - 1])

    def test_undecorated(self):
        self.assertEqual(corpus.decorator_start_line(LINES, 7), 7)
        self.assertEqual(corpus.decorator_start_line(LINES, 4), 4)
        self.assertEqual(corpus.decorator_start_line(LINES, 24), 24)

    def test_single_decorator(self):
        self.assertEqual(corpus.decorator_start_line(LINES, 11), 10)

    def test_multiline_decorators_with_comment_between(self):
        self.assertEqual(corpus.decorator_start_line(LINES, 20), 14)

    def test_decorator_right_after_a_function(self):
        self.assertEqual(corpus.decorator_start_line(LINES, 27), 26)

    def test_closing_bracket_above_is_not_a_decorator(self):
        self.assertEqual(corpus.decorator_start_line(LINES, 35), 35)

    def test_decorated_enclosing_function_is_not_taken(self):
        src = textwrap.dedent('''\
            class M:
                @classmethod
                def make(cls, queryset_class):
                    def create(name, method):
                        @wraps(method)
                        def inner(self):
                            return 1
                        return inner
                    class Nested(Base, kw=1):
                        pass
        ''').splitlines()
        self.assertEqual(corpus.decorator_start_line(src, 6), 5)   # inner
        self.assertEqual(corpus.decorator_start_line(src, 4), 4)   # create: not @classmethod
        self.assertEqual(corpus.decorator_start_line(src, 9), 9)   # Nested

    def test_agrees_with_ast(self):
        tree = ast.parse(SOURCE)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                want = min([d.lineno for d in node.decorator_list] + [node.lineno])
                self.assertEqual(corpus.decorator_start_line(LINES, node.lineno), want, node.name)

    def test_out_of_range(self):
        self.assertEqual(corpus.decorator_start_line(LINES, 10_000), 10_000)

    def test_check_target(self):
        self.assertIsNone(corpus.check_target(LINES, target("Paginator.validate_number", 20)))
        self.assertIsNotNone(corpus.check_target(LINES, target("Paginator.validate_number", 19)))
        self.assertIsNotNone(corpus.check_target(LINES, target("Paginator.count", 20)))


class HitRule(unittest.TestCase):
    T = target("Paginator.validate_number", 20)
    DECO = 14

    def hits(self, r: dict) -> bool:
        return corpus.result_hits(r, self.T, self.DECO)

    def test_qualname_match(self):
        # a different range, but the same qualified name (e.g. another ordinal) hits
        self.assertTrue(self.hits(result("Paginator.validate_number", 100, 100)))

    def test_def_line_match(self):
        # the chunk includes the decorators: startLine 14, defLine 20
        self.assertTrue(self.hits(result("something.else", 14, 20)))

    def test_start_line_within_decorators(self):
        for start in (14, 17, 19, 20):
            self.assertTrue(self.hits(result("renamed", start, 999)), start)

    def test_containing_class_does_not_hit(self):
        self.assertFalse(self.hits(result("Paginator", 4, 4, kind="class")))

    def test_start_before_decorators_does_not_hit(self):
        self.assertFalse(self.hits(result("other", 13, 13)))
        self.assertFalse(self.hits(result("other", 21, 21)))

    def test_other_path_does_not_hit(self):
        self.assertFalse(self.hits(result("Paginator.validate_number", 14, 20, path="pkg/other.py")))

    def test_path_normalisation(self):
        self.assertTrue(self.hits(result("Paginator.validate_number", 14, 20, path="./pkg/paginator.py")))

    def test_without_decorator_info_only_def_line_counts(self):
        self.assertFalse(corpus.result_hits(result("x", 14, 14), self.T, None))
        self.assertTrue(corpus.result_hits(result("x", 20, 20), self.T, None))

    def test_missing_def_line(self):
        r = result("x", 15)
        del r["defLine"]
        self.assertTrue(self.hits(r))

    def test_first_hit_rank_and_target(self):
        targets = [target("Paginator.get_page", 74), self.T]
        results = [result("Paginator", 4, kind="class"), result("Paginator.count", 10, 11),
                   result("Paginator.validate_number", 14, 20), result("Paginator.get_page", 74)]
        self.assertEqual(corpus.first_hit(results, targets, [74, 14]), (3, 1))
        self.assertEqual(corpus.first_hit(results[:2], targets, [74, 14]), (None, None))
        self.assertEqual(corpus.first_hit([], targets), (None, None))


class Metrics(unittest.TestCase):
    def test_hand_made_ranking(self):
        ranks = [1, 3, None, 7, 12]
        m = corpus.metrics(ranks)
        self.assertEqual(m["n"], 5)
        self.assertAlmostEqual(m["recall@1"], 1 / 5)
        self.assertAlmostEqual(m["recall@5"], 2 / 5)
        self.assertAlmostEqual(m["recall@10"], 3 / 5)
        self.assertAlmostEqual(m["mrr"], (1 + 1 / 3 + 0 + 1 / 7 + 1 / 12) / 5)

    def test_boundaries(self):
        m = corpus.metrics([5, 10, 11])
        self.assertAlmostEqual(m["recall@1"], 0)
        self.assertAlmostEqual(m["recall@5"], 1 / 3)
        self.assertAlmostEqual(m["recall@10"], 2 / 3)

    def test_empty(self):
        self.assertEqual(corpus.metrics([]), {"n": 0, "recall@1": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr": 0.0})

    def test_grouped(self):
        rows = [
            {"repo": "django", "difficulty": "lexical", "rank": 1},
            {"repo": "django", "difficulty": "conceptual", "rank": None},
            {"repo": "flask", "difficulty": "lexical", "rank": 2},
            {"repo": "requests", "difficulty": "paraphrase", "rank": 6},
        ]
        g = corpus.grouped_metrics(rows, ["django", "flask", "requests"])
        self.assertEqual(list(g["byDifficulty"]), ["lexical", "paraphrase", "conceptual"])
        self.assertEqual(list(g["byRepo"]), ["django", "flask", "requests"])
        self.assertAlmostEqual(g["overall"]["recall@1"], 0.25)
        self.assertAlmostEqual(g["overall"]["recall@5"], 0.5)
        self.assertAlmostEqual(g["overall"]["recall@10"], 0.75)
        self.assertAlmostEqual(g["overall"]["mrr"], (1 + 0.5 + 1 / 6) / 4)
        self.assertAlmostEqual(g["byDifficulty"]["lexical"]["mrr"], 0.75)
        self.assertAlmostEqual(g["byRepo"]["django"]["recall@10"], 0.5)

    def test_evaluate_end_to_end(self):
        questions = [
            {"id": "a", "repo": "r", "difficulty": "lexical", "question": "q1",
             "expected": [target("Paginator.validate_number", 20)]},
            {"id": "b", "repo": "r", "difficulty": "paraphrase", "question": "q2",
             "expected": [target("Paginator.count", 11)]},
        ]
        answers = {
            "a": {"query": "q1", "results": [result("Paginator", 4, kind="class"),
                                             result("Paginator.validate_number", 14, 20)]},
            "b": {"query": "q2", "results": []},
        }
        out = corpus.evaluate(questions, answers, {"a": [14], "b": [10]}, ["r"])
        self.assertEqual([q["rank"] for q in out["questions"]], [2, None])
        self.assertEqual(out["questions"][0]["hitTarget"], "Paginator.validate_number")
        self.assertFalse(out["questions"][0]["topHits"])
        self.assertIsNone(out["questions"][1]["top"])
        self.assertAlmostEqual(out["overall"]["mrr"], 0.25)
        text = corpus.eval_report({"default": out, "maxPerFile0": out}, ["default", "maxPerFile0"])
        self.assertIn("overall", text)
        self.assertIn("(no result)", text)


class Stats(unittest.TestCase):
    def test_median(self):
        self.assertEqual(corpus.median([3, 1, 2]), 2)
        self.assertEqual(corpus.median([4, 1, 3, 2]), 2.5)
        self.assertEqual(corpus.median([7]), 7)
        with self.assertRaises(ValueError):
            corpus.median([])

    def test_percentile_nearest_rank(self):
        vals = list(range(100, 0, -1))  # 1..100, shuffled order does not matter
        self.assertEqual(corpus.percentile(vals, 50), 50)
        self.assertEqual(corpus.percentile(vals, 95), 95)
        self.assertEqual(corpus.percentile(vals, 100), 100)
        self.assertEqual(corpus.percentile(vals, 0), 1)
        self.assertEqual(corpus.percentile([5.0], 95), 5.0)
        self.assertEqual(corpus.percentile([1, 2, 3, 4], 50), 2)
        self.assertEqual(corpus.percentile([1, 2, 3, 4], 95), 4)
        with self.assertRaises(ValueError):
            corpus.percentile([], 50)
        with self.assertRaises(ValueError):
            corpus.percentile([1], 101)


class Corpora(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def make_wheel(self, version: str = "1.2.3", name: str = "demo") -> Path:
        whl = self.dir / f"{name}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as z:
            z.writestr(f"{name}/__init__.py", "x = 1\n")
            z.writestr(f"{name}/sub/mod.py", "def f():\n    return 1\n\n\ndef g(): pass")  # no final newline
            z.writestr(f"{name}/data.txt", "not python\n")
            z.writestr(f"{name}-{version}.dist-info/METADATA",
                       f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nVersion: 9.9\n")
            z.writestr(f"{name}-{version}.dist-info/RECORD", "")
        return whl

    def test_find_wheel(self):
        whl = self.make_wheel()
        self.assertEqual(corpus.find_wheel(self.dir, "demo", "1.2.3"), whl)
        self.assertIsNone(corpus.find_wheel(self.dir, "demo", "1.2"))
        self.assertIsNone(corpus.find_wheel(self.dir / "missing", "demo", "1.2.3"))
        (self.dir / "Django-5.2.8-py3-none-any.whl").write_bytes(b"")
        self.assertIsNotNone(corpus.find_wheel(self.dir, "django", "5.2.8"))

    def test_unpack_and_stats(self):
        whl = self.make_wheel()
        dest = corpus.unpack_wheel(whl, self.dir / "corpora" / "demo", "demo", "1.2.3")
        self.assertTrue((dest / "demo" / "sub" / "mod.py").is_file())
        self.assertFalse(list(dest.glob("*.dist-info")))
        (dest / ".aurora").mkdir()
        (dest / ".aurora" / "ignored.py").write_text("a\nb\n")
        (dest / "demo" / "__pycache__").mkdir()
        (dest / "demo" / "__pycache__" / "x.py").write_text("a\n")
        s = corpus.corpus_stats(dest)
        self.assertEqual(s["files"], 2)
        self.assertEqual(s["lines"], 1 + 5)
        self.assertEqual(s["bytes"], len("x = 1\n") + len("def f():\n    return 1\n\n\ndef g(): pass"))
        self.assertEqual(corpus.pick_edit_file(dest), dest / "demo" / "sub" / "mod.py")
        # unpacking again replaces the folder (the store goes with it)
        corpus.unpack_wheel(whl, dest, "demo", "1.2.3")
        self.assertFalse((dest / ".aurora").exists())

    def test_version_mismatch_fails(self):
        whl = self.make_wheel(version="1.2.3")
        with self.assertRaises(corpus.StepError) as cm:
            corpus.unpack_wheel(whl, self.dir / "out", "demo", "1.2.4")
        self.assertIn("1.2.3", str(cm.exception))
        with self.assertRaises(corpus.StepError):
            corpus.unpack_wheel(whl, self.dir / "out", "other", "1.2.3")

    def test_count_lines(self):
        self.assertEqual(corpus.count_lines(b""), 0)
        self.assertEqual(corpus.count_lines(b"a"), 1)
        self.assertEqual(corpus.count_lines(b"a\n"), 1)
        self.assertEqual(corpus.count_lines(b"a\nb"), 2)

    def test_parse_json_helpers(self):
        self.assertEqual(corpus.parse_json_object('noise\n{"a": 1}\n', "t"), {"a": 1})
        with self.assertRaises(corpus.StepError):
            corpus.parse_json_object("not json", "t")
        self.assertEqual(corpus.parse_json_lines('{"a":1}\n\n{"a":2}\n', "t"), [{"a": 1}, {"a": 2}])
        with self.assertRaises(corpus.StepError):
            corpus.parse_json_lines('{"a":1}\n[1]\n', "t")

    def test_load_questions_validates(self):
        good = {"corpus": {"r": "1"}, "questions": [
            {"id": "a", "repo": "r", "question": "q", "difficulty": "lexical",
             "expected": [{"path": "p.py", "qualname": "f", "start_line": 1}]}]}
        p = self.dir / "q.json"
        p.write_text(json.dumps(good))
        self.assertEqual(len(corpus.load_questions(p)["questions"]), 1)
        bad = json.loads(json.dumps(good))
        bad["questions"][0]["repo"] = "unknown"
        p.write_text(json.dumps(bad))
        with self.assertRaises(corpus.StepError):
            corpus.load_questions(p)


class PublicQuestionSet(unittest.TestCase):
    """Shape of the shared question set (skipped when it is not next to the repo)."""

    PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "retrieval-eval-public.json"

    def test_shape(self):
        if not self.PATH.is_file():
            self.skipTest(f"{self.PATH} not found")
        doc = corpus.load_questions(self.PATH)
        self.assertEqual(doc["corpus"], corpus.PINNED)
        self.assertEqual(len(doc["questions"]), 20)
        self.assertEqual({q["difficulty"] for q in doc["questions"]}, set(corpus.DIFFICULTIES))


if __name__ == "__main__":
    unittest.main()

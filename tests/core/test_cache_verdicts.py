"""Stored same-capture verdicts come back for exactly the pairs asked whose files are unchanged, whether
the cache holds many more verdicts than are asked (looked up by key) or few (read whole)."""

from __future__ import annotations

import os

from core.cache import EmbeddingCache


def _rows(n: int) -> dict[tuple[str, str], tuple[str, bool, str]]:
    return {(f"/p/a{k}.jpg", f"/p/b{k}.jpg"): (f"stats{k}", k % 2 == 0, f"reason {k}") for k in range(n)}


def test_verdicts_are_read_back_for_the_pairs_asked_either_way(tmp_path):
    cache = EmbeddingCache(tmp_path)
    stored = _rows(1000)
    odd = (os.fsdecode(b"/p/caf\xe9.jpg"), "/p/\u00e9t\u00e9.jpg")  # a non-UTF-8 name and a UTF-8 one
    stored[odd] = ("s-odd", True, "")
    cache.store_verdicts(stored)
    for asked in (5, 900):  # few of many: looked up by key; most of them: the table read whole
        keys = {pair: stats for pair, (stats, _, _) in list(stored.items())[:asked]}
        keys[("/p/a3.jpg", "/p/b3.jpg")] = "changed"  # a file changed since: its verdict is stale
        keys[("/p/never.jpg", "/p/asked.jpg")] = "s"  # never verified
        keys[odd] = "s-odd"
        got = cache.verdicts(keys)
        want = {p: (same, why) for p, (st, same, why) in stored.items() if keys.get(p) == st}
        assert got == want
        assert ("/p/a3.jpg", "/p/b3.jpg") not in got and odd in got
        assert len(got) == min(asked, 1000) - (asked > 3) + 1
    assert cache.verdicts({}) == {}
    cache.close()


def test_the_integrity_check_is_skipped_only_for_a_file_as_a_clean_close_left_it(tmp_path):
    """The whole-file check is skipped only when nothing touched the database since it was closed cleanly:
    a change by anyone, or a write-ahead log left by a writer that did not close, means checking again."""
    cache = EmbeddingCache(tmp_path)
    assert cache.integrity_checked  # a new file
    cache.store_verdicts(_rows(10))
    other = EmbeddingCache(tmp_path)
    assert other.integrity_checked  # another connection is open: not as left
    other.close()
    cache.close()  # the last one
    again = EmbeddingCache(tmp_path)
    assert not again.integrity_checked and again.verdicts({("/p/a1.jpg", "/p/b1.jpg"): "stats1"})
    again.close()
    with open(again.path, "ab") as fh:  # another program appended to it
        fh.write(b"\0" * 4096)
    assert EmbeddingCache(tmp_path).integrity_checked
    crashed = EmbeddingCache(tmp_path)  # a writer that never closes: its write-ahead log stays
    crashed.store_verdicts(_rows(20))
    assert EmbeddingCache(tmp_path).integrity_checked

"""The work cache's copies of given files (lrf.runs.cached_copy)."""

import hashlib

from lrf.runs import cached_copy


def test_a_given_file_is_copied_under_its_content_and_a_damaged_copy_replaced(tmp_path):
    source, cache = tmp_path / "mine.params", tmp_path / "cache"
    cache.mkdir()
    source.write_bytes(b"weights v1")
    copy = cached_copy(source, cache, "init-given")
    assert copy.name == f"init-given-{hashlib.sha256(b'weights v1').hexdigest()[:16]}.params"
    assert copy.read_bytes() == b"weights v1" and copy.stat().st_ino != source.stat().st_ino  # a copy, not a link
    inode = copy.stat().st_ino
    assert cached_copy(source, cache, "init-given") == copy and copy.stat().st_ino == inode  # kept as it is
    copy.write_bytes(b"weights v1, damaged")
    assert cached_copy(source, cache, "init-given").read_bytes() == b"weights v1"  # replaced
    source.write_bytes(b"weights v2")
    edited = cached_copy(source, cache, "init-given")
    assert edited != copy and edited.read_bytes() == b"weights v2"  # other content, other name

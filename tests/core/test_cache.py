"""The work cache's copies of given files (lrf.cache.WorkCache.copy_in)."""

import hashlib

from lrf.cache import WorkCache


def test_a_given_file_is_copied_under_its_content_and_a_damaged_copy_replaced(tmp_path):
    source, cache = tmp_path / "mine.params", tmp_path / "cache"
    cache.mkdir()
    source.write_bytes(b"weights v1")
    copy = WorkCache(cache).copy_in(source)
    assert copy.name == f"init-given-{hashlib.sha256(b'weights v1').hexdigest()[:16]}.params"
    assert copy.read_bytes() == b"weights v1" and copy.stat().st_ino != source.stat().st_ino  # a copy, not a link
    inode = copy.stat().st_ino
    assert WorkCache(cache).copy_in(source) == copy and copy.stat().st_ino == inode  # kept as it is
    copy.write_bytes(b"weights v1, damaged")
    assert WorkCache(cache).copy_in(source).read_bytes() == b"weights v1"  # replaced
    source.write_bytes(b"weights v2")
    edited = WorkCache(cache).copy_in(source)
    assert edited != copy and edited.read_bytes() == b"weights v2"  # other content, other name

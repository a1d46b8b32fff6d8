import json
import os
import stat

import pytest

from speedtrain.common.atomic import write_json_atomic, write_text_atomic


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_an_unencodable_value_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_files_get_ordinary_permissions(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
def test_file_lock_excludes_another_process_and_times_out_with_one_line(tmp_path):
    import subprocess
    import sys
    import textwrap

    from speedtrain.common.atomic import file_lock
    from speedtrain.common.errors import LockTimeoutError

    target = tmp_path / "baselines.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from speedtrain.common.atomic import file_lock
            with file_lock({str(target)!r}):
                print("held", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeoutError) as exc:
            with file_lock(target, timeout_s=0.2):
                pass
        message = str(exc.value)
        assert "\n" not in message and "baselines.json" in message and "locked" in message
    finally:
        holder.communicate("\n", timeout=30)
    # Released when the holder exits: we get it at once.
    with file_lock(target, timeout_s=0.2):
        pass
    assert (tmp_path / "baselines.json.lock").exists()


def test_file_lock_serialises_within_a_process_and_releases_on_error(tmp_path):
    import threading

    from speedtrain.common.atomic import file_lock

    target = tmp_path / "b.json"
    order = []
    entered = threading.Event()
    release = threading.Event()

    def first():
        with file_lock(target):
            order.append("first in")
            entered.set()
            release.wait(10)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(10)

    def second():
        with file_lock(target, timeout_s=10):
            order.append("second in")

    t2 = threading.Thread(target=second)
    t2.start()
    import time
    time.sleep(0.2)
    assert order == ["first in"]  # the second waits
    release.set()
    t.join(10)
    t2.join(10)
    assert order == ["first in", "first out", "second in"]

    with pytest.raises(RuntimeError):
        with file_lock(target, timeout_s=1):
            raise RuntimeError("boom")
    with file_lock(target, timeout_s=0.2):  # the error released it
        pass


def test_an_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]

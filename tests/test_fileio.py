"""fileio: atomic JSON without NaN, the checks made before work starts, and the removal of stale temporaries."""
import json
import os
import signal

import pytest

from scratchgan.cli import run_command
from scratchgan.fileio import (OutputError, atomic_write, check_writable_dir, check_writable_file,
                               remove_stale_temporaries, write_json)


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    write_json(tmp_path / "a.json", {"loss": float("nan"), "rows": [1.5, float("-inf"), {"x": float("inf")}]})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "rows": [1.5, None, {"x": None}]}


def test_a_killed_atomic_write_leaves_a_temporary_that_the_next_start_removes(tmp_path, monkeypatch):
    from scratchgan import fileio
    target = tmp_path / "checkpoint.npz"
    monkeypatch.setattr(fileio.os, "unlink", lambda path: None)   # a kill -9 runs no cleanup
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError
    monkeypatch.undo()
    leftover, = tmp_path.iterdir()
    (tmp_path / "other.part").write_bytes(b"not ours")
    assert remove_stale_temporaries(tmp_path, ["checkpoint.npz"]) == [leftover]
    assert [p.name for p in tmp_path.iterdir()] == ["other.part"]


def test_checks_before_work_name_the_problem(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_writable_dir(tmp_path / "new" / "run").is_dir()       # created with its parents
    with pytest.raises(OutputError, match="cannot write into .*file: it is a file, not a folder"):
        check_writable_dir(tmp_path / "file")
    with pytest.raises(OutputError, match="cannot write into .*file/run: Not a directory"):
        check_writable_dir(tmp_path / "file" / "run")
    with pytest.raises(OutputError, match="folder .*missing does not exist"):
        check_writable_file(tmp_path / "missing" / "x.npy")
    with pytest.raises(OutputError, match="it is a folder"):
        check_writable_file(tmp_path)
    assert check_writable_file(tmp_path / "x.npy") == tmp_path / "x.npy" and not (tmp_path / "x.npy").exists()
    assert isinstance(OutputError("x"), OSError)


def test_every_command_treats_sigterm_like_ctrl_c(tmp_path, capsys):
    def command():
        with atomic_write(tmp_path / "out.npy") as f:
            f.write(b"partial")
            os.kill(os.getpid(), signal.SIGTERM)
            f.write(b"never")

    assert run_command("scratchgan sample", command) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "scratchgan sample: interrupted (SIGTERM)" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []                          # neither the output nor a temporary
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL      # restored after the command


def test_unexpected_errors_keep_their_traceback():
    def buggy():
        raise ZeroDivisionError("a bug, not bad input")
    with pytest.raises(ZeroDivisionError):
        run_command("scratchgan x", buggy)


def test_a_folder_refusing_files_is_found_by_the_probe(tmp_path, monkeypatch):
    """What a read-only folder does for a non-root user (root may write anywhere, so it is simulated)."""
    from scratchgan import fileio

    def refuse(dir=None):
        raise PermissionError(13, "Permission denied", str(dir))
    monkeypatch.setattr(fileio.tempfile, "TemporaryFile", refuse)
    with pytest.raises(OutputError, match="cannot write into .*: Permission denied"):
        check_writable_dir(tmp_path)
    with pytest.raises(OutputError, match="cannot write .*x.npy: Permission denied"):
        check_writable_file(tmp_path / "x.npy")

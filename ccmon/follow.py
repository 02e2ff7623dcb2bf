"""Reading a log file line by line like `tail -F`, and the position file that resumes it.

`Follower` hands out complete lines with the offset just past each. Followed, it waits at the
end for more, and notices a rotation (the path names another file: the old one is read to
its end first, then the new one from its start) and a truncation (the file is shorter than
where we are: read again from its start). Not followed, the file's last line counts even
without its line ending, and the end is the end.

The position file is JSON written whole to a temporary file, synced and renamed over the old
one, so a crash at any moment leaves either the old position or the new one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Position:
    inode: int | None = None  # the file the offset belongs to
    offset: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # the mapper's, as of `offset`


def load_position(path: str) -> Position:
    """The saved position, or the start when there is none yet."""
    data = load_json(path) or {}
    return Position(data.get("inode"), int(data.get("offset", 0)), data.get("state") or {})


def save_position(path: str, position: Position) -> None:
    save_json(path, {"inode": position.inode, "offset": position.offset,
                     "state": position.state})


def load_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def save_json(path: str, data: dict[str, Any]) -> None:
    """Written whole or not at all: a temporary file, synced, renamed over the old one."""
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(json.dumps(data, separators=(",", ":")).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class Follower:
    def __init__(self, path: str, start: Position, follow: bool) -> None:
        self.path = path
        self.follow = follow
        self.inode = start.inode
        self.offset = start.offset
        self._file: IO[bytes] | None = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def lines(self, most: int) -> list[tuple[int, int, bytes]]:
        """Up to `most` complete lines as (offset of the line, offset past it, bytes); empty at
        the end for now (followed) or for good (not followed)."""
        if self._file is None and not self._open():
            return []
        out = self._read(most, finished=not self.follow)
        if out or not self.follow:
            return out
        try:  # at the end of a followed file: was it rotated or truncated?
            status = os.stat(self.path)
        except FileNotFoundError:
            return []  # being rotated: keep the old file until the new one is there
        if status.st_ino != self.inode:
            out = self._read(most, finished=True)  # the old file's end, even half a line
            if out:
                return out
            self.close()
            return self._read(most) if self._open() else []
        if status.st_size < self.offset:
            self._file.seek(0)
            self.offset = 0
            return self._read(most)
        return []

    def _open(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open between calls
        except FileNotFoundError:
            if not self.follow:
                raise
            return False  # rotated away; the new file is not there yet
        status = os.fstat(handle.fileno())
        if status.st_ino != self.inode or status.st_size < self.offset:
            # Another file than the position's (rotated while we were stopped, or the first
            # run), or one shorter than it (truncated): from its start.
            self.inode, self.offset = status.st_ino, 0
        handle.seek(self.offset)
        self._file = handle
        return True

    def _read(self, most: int, finished: bool = False) -> list[tuple[int, int, bytes]]:
        """Lines from where we are; a last one without its ending only if `finished` (no one
        writes the file any more), else it waits for the rest."""
        assert self._file is not None
        out: list[tuple[int, int, bytes]] = []
        while len(out) < most:
            raw = self._file.readline()
            if not raw:
                break
            if not raw.endswith(b"\n") and not finished:
                self._file.seek(self.offset)
                break
            start, self.offset = self.offset, self.offset + len(raw)
            out.append((start, self.offset, raw))
        return out

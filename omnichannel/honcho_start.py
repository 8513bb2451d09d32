"""`honcho start` for `make run`, which also stops the processes when the terminal goes away.

honcho stops its processes on SIGINT (Ctrl-C) and SIGTERM, and starts each in a session of
its own, out of the terminal's reach. A closed terminal or a dropped SSH session sends SIGHUP
instead, which killed honcho alone and left gunicorn, the worker and beat running, orphaned.
Here SIGHUP is SIGTERM, unless it is ignored: `nohup make run &` asks exactly that a closed
terminal or a logout stop nothing, and the ignored SIGHUP is kept. The hung-up terminal also
answers every write with EIO: honcho's "SIGTERM received" raised in its signal handler and
it died all the same, so output that cannot be written is dropped.

Usage: python -m omnichannel.honcho_start [honcho start's arguments]
"""

import contextlib
import os
import signal
import sys

from honcho.command import main


class _OutputOrNothing:
    """A stream whose writes are dropped once the terminal behind it is gone."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _terminate(signum, frame) -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # honcho's own handler stops every process


if __name__ == "__main__":
    # honcho's helper processes (forked, one per process, in this process group) inherit it:
    # there SIGTERM is ignored, so they live on to report their process's exit.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # not under nohup
        signal.signal(signal.SIGHUP, _terminate)
    sys.stdout = _OutputOrNothing(sys.stdout)
    sys.stderr = _OutputOrNothing(sys.stderr)
    main(["start", *sys.argv[1:]])

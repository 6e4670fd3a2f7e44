"""Keep TensorFlow's and XLA's C++ start-up notes off a person's terminal.

TensorFlow writes its start-up notes (oneDNN, "Could not find cuda drivers", CPU instruction
sets, and on machines without a GPU a "failed call to cuInit" error) from C++ straight to file
descriptor 2, before its logging is configured, so TF_CPP_MIN_LOG_LEVEL does not hide them and
Python cannot intercept them. `filtered_stderr` points descriptor 2 at a pipe for the duration of
a command and forwards every line except those notes, so warnings and errors still reach the
terminal, in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import Iterator

# One pattern per known note; anything else is forwarded untouched.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:. ]+\d+ \S+:\d+\]"  # absl INFO lines (I0000 00:00:... port.cc:153] ...)
    r"|E\d{4} [\d:. ]+\d+ cuda_(platform|executor|diagnostics)\.cc:\d+\] failed call to cuInit"
    # an "error" that only says oneDNN falls back to Eigen for int32 (seen under kzoo robustness)
    r"|E\d{4} [\d:. ]+\d+ util\.cc:\d+\] oneDNN supports DT_INT32 only on platforms with AVX-512\."
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."  # the LiteRT interpreter, once per file
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)"
)


def is_noise(line: str) -> bool:
    """Whether `line` is one of TensorFlow's known start-up notes.

    Example:
        >>> is_noise("I0000 00:00:1796200347.648475    2258 cudart_stub.cc:31] Could not find cuda drivers")
        True
        >>> is_noise("kzoo train: error: unknown model 'vit'")
        False
    """
    return bool(NOISE.match(line))


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True) -> Iterator[None]:
    """Forward file descriptor 2 through a filter that drops TensorFlow's start-up notes.

    Example:
        >>> with filtered_stderr():  # doctest: +SKIP
        ...     import tensorflow  # its start-up notes no longer reach the terminal
    """
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (a closed or replaced stderr): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, real), daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the forwarder reads to the end and stops
        forwarder.join(timeout=5)
        os.close(real)


def _forward(read_end: int, real: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line + b"\n" for line in lines if not is_noise(line.decode("utf-8", "replace"))]
            if b"\r" in pending:  # a progress bar redrawing its line (tqdm, TFDS): show it now, not at its end
                cut = pending.rfind(b"\r") + 1
                kept.append(pending[:cut])
                pending = pending[cut:]
            if kept:
                _write_all(real, b"".join(kept))
        if pending and not is_noise(pending.decode("utf-8", "replace")):
            _write_all(real, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]

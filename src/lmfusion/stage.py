"""What every stage script and CLI command shares: one-line errors with their exit codes, and logging."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable

from lmfusion.errors import LmfusionError

log = logging.getLogger("lmfusion")


def stage_main(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn`; a LmfusionError becomes `error: <message>` on stderr and its exit code, with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        try:
            return fn(*args, **kwargs)
        except LmfusionError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper

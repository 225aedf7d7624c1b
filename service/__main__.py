"""`python -m service`: the server's command line (`service/server/cli.py`)."""

import gc
import sys

# Start-up runs with the garbage collector off, from the first import on: see
# `service/server/cli.py` (`main`), which turns it back on once the server is built.
gc.disable()

from service.server.cli import main  # noqa: E402 - after gc.disable(), on purpose

if __name__ == "__main__":
    sys.exit(main())

"""Drive a running service with single-image requests at concurrency 64, for profiling.

Start the server (one worker, so one process holds the whole request path), attach
py-spy to it, then run this load; see bench/results/profile-c64.md for the figures:

    DIGITS_PORT=8799 DIGITS_HOST=127.0.0.1 DIGITS_WORKERS=1 DIGITS_ACCESS_LOG=false \\
        .venv/bin/python -m service &
    py-spy record -p <server pid> -d 10 -r 200 -f raw -o profile.txt --nonblocking &
    .venv/bin/python -m bench.profile_load --port 8799
"""

from __future__ import annotations

import argparse
import base64
import json

from bench.loadgen import post_request, run_load
from samples.uploads import encode_png, load_test_digits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args(argv)
    images, _ = load_test_digits(64)
    payloads = [
        post_request(
            "127.0.0.1",
            args.port,
            "/v1/predict",
            json.dumps({"images": [{"data": base64.b64encode(encode_png(d)).decode()}]}).encode(),
        )
        for d in images
    ]
    result = run_load(
        "127.0.0.1",
        args.port,
        payloads,
        concurrency=args.concurrency,
        requests=1_000_000,
        time_limit=args.seconds,
    )
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

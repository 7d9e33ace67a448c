"""Write a Wove payload for a Python callable, exactly as Wove's adapters build it.

    python examples/make_python_payload.py > my-payload.json
    wove-worker --print-events --payload-file my-payload.json

Needs `wove[dispatch]` (for `build_backend_payload`). The callable here is a
plain function defined in this file, which cloudpickle ships by value, so the
interpreter that runs it must be the same Python minor version as this one.
"""
import json
import sys

from wove.backend import build_backend_payload


def area(width: float, height: float) -> dict:
    print(f"computing {width} x {height}")
    return {"area": width * height}


frame = {
    "run_id": "area:00000000000000000000000000000002",
    "task_id": "area",
    "callable": area,
    "args": {"width": 3, "height": 4},
    "delivery": {"delivery_heartbeat_seconds": 30},
}
payload = build_backend_payload(frame, callback_url="http://127.0.0.1:9/wove/events/example-token", adapter="kubernetes_jobs")
json.dump(payload, sys.stdout, indent=2)
sys.stdout.write("\n")

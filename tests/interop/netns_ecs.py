"""One worker run in a private network namespace that holds ECS's credentials address.

Batch gives a job role to its container as `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, a path on the
fixed address 169.254.170.2 (port 80), which no client lets a test move. So this script is run under
`unshare --net` (root): in a namespace of its own, with nothing but a loopback interface, it puts
169.254.170.2 on that interface and serves the credentials there, with moto's S3 and the event
receiver on 127.0.0.1 beside it. Nothing it does can reach, or be reached from, another host.

Input (stdin, JSON): `worker_command`, `worker_env`, `workdir`, `task` (a subprocess task).
Output (stdout, JSON): the worker's exit code and stderr, the credential requests, the events.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

from object_store import CredentialsEndpoint, S3Server, sha256_hex
from receiver import EventReceiver

ECS_ADDRESS = ("169.254.170.2", 80)


def main() -> None:
    given = json.load(sys.stdin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{ECS_ADDRESS[0]}/32", "dev", "lo"], check=True)
    workdir = Path(given["workdir"])
    s3 = S3Server(workdir, auth=True)
    receiver = EventReceiver()
    endpoint = CredentialsEndpoint(s3.role_session, None, ECS_ADDRESS)
    try:
        body = json.dumps({
            "version": 1, "callback_url": f"{receiver.base_url}/wove/events/netns-token",
            "run_id": f"ecs:{secrets.token_hex(8)}", "task_id": "ecs", "task": given["task"],
        }).encode()
        key = f"jobs/ecs-relative/{sha256_hex(body)}"
        url = s3.put(key, body)
        relative = f"/v2/credentials/{secrets.token_hex(8)}"
        env = {**given["worker_env"], **s3.worker_env(None),
               "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": relative,
               "WOVE_BACKEND_PAYLOAD_URL": url, "WOVE_BACKEND_PAYLOAD_SHA256": sha256_hex(body)}
        done = subprocess.run(given["worker_command"], env=env, cwd=workdir, capture_output=True, timeout=60)
        json.dump({
            "code": done.returncode, "stderr": done.stderr.decode(errors="replace"),
            "relative_uri": relative, "session_key": s3.role_session.access_key,
            "requests": endpoint.requests, "events": receiver.events(),
        }, sys.stdout)
    finally:
        endpoint.close()
        receiver.close()
        s3.stop()


if __name__ == "__main__":
    main()

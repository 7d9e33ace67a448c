# Runs one pickled Wove callable for wove-worker.
#
# Usage: python3 -c <this file> IN_JSON OUT_JSON
# IN_JSON holds {"callable_pickle", "args_pickle"}; the outcome goes to
# OUT_JSON (written whole, then renamed into place), never to stdout, which
# belongs to the task. Imports only the standard library and cloudpickle, and
# mirrors wove.backend.run_backend_payload_async: the callable runs inside a
# running event loop and an awaitable result is awaited.
import asyncio
import base64
import inspect
import json
import os
import sys
import traceback


def _write(path, outcome):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(outcome, f, separators=(",", ":"))
    os.replace(tmp, path)


def _error_dict(exc):
    # Same keys and values as wove.environment.normalize_exception(exc, source="task").
    return {
        "kind": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "retryable": False,
        "source": "task",
    }


def _dumps(pickler, value):
    return base64.b64encode(pickler.dumps(value)).decode("ascii")


async def _run(pickler, job):
    func = pickler.loads(base64.b64decode(job["callable_pickle"]))
    kwargs = pickler.loads(base64.b64decode(job["args_pickle"]))
    value = func(**kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value


def main():
    in_path, out_path = sys.argv[1], sys.argv[2]
    del sys.argv[1:]
    try:
        import cloudpickle
    except ImportError as exc:
        _write(out_path, {"status": "setup_error", "kind": "MissingCloudpickle",
                          "message": "the Python interpreter cannot import cloudpickle: %s" % exc})
        return
    with open(in_path, encoding="utf-8") as f:
        job = json.load(f)
    os.unlink(in_path)
    try:
        value = asyncio.run(_run(cloudpickle, job))
    except asyncio.CancelledError:
        _write(out_path, {"status": "cancelled"})
        return
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are the task's failures too
        error = _error_dict(exc)
        try:
            exception_pickle = _dumps(cloudpickle, exc)
        except Exception as pickle_exc:
            exception_pickle = None
            error["pickle_error"] = "%s: %s" % (type(pickle_exc).__name__, pickle_exc)
        _write(out_path, {"status": "error", "error": error, "exception_pickle": exception_pickle})
        return
    try:
        result_pickle = _dumps(cloudpickle, value)
    except Exception as exc:
        error = _error_dict(exc)
        error["message"] = "the task's result cannot be pickled: %s" % exc
        _write(out_path, {"status": "error", "error": error, "exception_pickle": None})
        return
    _write(out_path, {"status": "ok", "result_pickle": result_pickle})


main()

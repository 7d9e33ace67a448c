# Runs one pickled Wove callable for wove-worker.
#
# Usage: python3 -c <this file> DIR
# DIR holds callable.pickle and args.pickle, raw pickle bytes. The outcome goes
# to DIR, never to stdout, which belongs to the task: result.pickle (the
# result's raw cloudpickle) when the callable returned, outcome.json otherwise.
# Each is written whole, then renamed into place.
#
# What a callable observes (docs/runners.md, the `python` runner): a plain function is
# called directly, with no event loop running -- as a weave runs it, in a thread
# of Wove's pool. An `async def`, or any awaitable a plain function returns, is
# awaited in a fresh event loop (asyncio.run). asyncio is imported only then:
# it costs more start-up time than everything else here together, and
# cloudpickle has already imported what the rest needs (inspect, traceback).
import os
import sys


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_outcome(folder, outcome):
    import json

    _write(os.path.join(folder, "outcome.json"), json.dumps(outcome, separators=(",", ":")).encode())


def _error_dict(exc):
    # Same keys and values as wove.environment.normalize_exception(exc, source="task").
    import traceback

    return {
        "kind": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "retryable": False,
        "source": "task",
    }


def _await(awaitable):
    import asyncio

    async def wait():
        return await awaitable

    return asyncio.run(wait())


def _is_cancelled(exc):
    # A task can only raise asyncio's CancelledError if asyncio is loaded.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def main():
    folder = sys.argv[1]
    del sys.argv[1:]
    try:
        import cloudpickle
    except ImportError as exc:
        _write_outcome(folder, {"status": "setup_error", "kind": "MissingCloudpickle",
                                "message": "the Python interpreter cannot import cloudpickle: %s" % exc})
        return
    import inspect

    try:
        with open(os.path.join(folder, "callable.pickle"), "rb") as f:
            func = cloudpickle.loads(f.read())
        with open(os.path.join(folder, "args.pickle"), "rb") as f:
            kwargs = cloudpickle.loads(f.read())
        value = func(**kwargs)
        if inspect.isawaitable(value):
            value = _await(value)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are the task's failures too
        if _is_cancelled(exc):
            _write_outcome(folder, {"status": "cancelled"})
            return
        error = _error_dict(exc)
        try:
            import base64

            exception_pickle = base64.b64encode(cloudpickle.dumps(exc)).decode("ascii")
        except Exception as pickle_exc:
            exception_pickle = None
            error["pickle_error"] = "%s: %s" % (type(pickle_exc).__name__, pickle_exc)
        _write_outcome(folder, {"status": "error", "error": error, "exception_pickle": exception_pickle})
        return
    try:
        result = cloudpickle.dumps(value)
    except Exception as exc:
        error = _error_dict(exc)
        error["message"] = "the task's result cannot be pickled: %s" % exc
        _write_outcome(folder, {"status": "error", "error": error, "exception_pickle": None})
        return
    del value
    _write(os.path.join(folder, "result.pickle"), result)


main()

# Runs inside the MicroPython unix port. Reads one JSON request per line on stdin:
#   {"code": "<python source>", "data": <any json>}
# executes the code with `data` bound (and `result = None`), then writes one line
#   \x02{"ok": true, "result": <result>}   or   \x02{"ok": false, "tb": "<traceback>"}
# Module state (imports, globals set by `code` via `G`) persists between requests,
# so many small test cases share one process.
import gc
import sys
import json
import io

G = {}


def _serve():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            req = json.loads(line)
            ns = {"data": req.get("data"), "result": None, "G": G}
            exec(req["code"], ns)
            # collect the case's garbage first: the shared process's heap, fragmented by
            # it, once had no contiguous block for a 20 KB result (MemoryError in CI)
            gc.collect()
            try:
                out = json.dumps({"ok": True, "result": ns["result"]})
            except MemoryError:
                # still no block that long: a case's survivors can lie scattered over the
                # whole heap (test_config's 90 KB of them on the 32-bit VM left no free run
                # above 26 KB in a 2 MB heap). Stream it out in pieces below.
                out = None
        except Exception as e:  # report every failure with its MicroPython traceback
            buf = io.StringIO()
            sys.print_exception(e, buf)
            out = json.dumps({"ok": False, "tb": buf.getvalue()})
        # three writes, not one concatenation: a large result needs no second contiguous
        # copy of itself (a heap fragmented by the test's garbage may have no such block)
        sys.stdout.write("\x02")
        if out is None:
            json.dump({"ok": True, "result": ns["result"]}, sys.stdout)
        else:
            sys.stdout.write(out)
        sys.stdout.write("\n")


_serve()

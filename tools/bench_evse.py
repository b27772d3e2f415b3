"""evse.step cost in the unix port: mean/max us per call, heap bytes per steady-state call."""
import json
from mp import run_script


def run(progress):
    progress("evse.step in A, B2, C2 (20000 calls each)")
    out = run_script("import evse_bench, json\nprint(json.dumps(evse_bench.bench()))", timeout=300)
    res = json.loads(out.strip().splitlines()[-1])
    for k, v in sorted(res.items()):
        progress("%s: mean %.2f us, max %d us, %.3f heap bytes/call" % (
            k, v["mean_us"], v["max_us"], v["heap_bytes_per_call"]))
    res["target"] = "0 heap bytes per steady-state step, < 50 us per step"
    return res

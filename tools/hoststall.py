"""Host stalls: tell a host that descheduled the firmware from a firmware that stalled.

On a busy 2-core machine the kernel may not run the firmware process for tens or hundreds
of ms. A latency sample that spans such a pause measures the host, not the firmware. Two
independent witnesses over the same window:

  sibling   a tiny CPython process (same nice level) that sleeps 1 ms in a loop and
            records every wake-up later than `threshold_ms` as [start, end] on
            CLOCK_MONOTONIC: the host's own scheduling gaps
  run_delay /proc/<pid>/schedstat of the firmware process: the time its threads spent
            runnable but waiting for a CPU (Linux schedstat, in ns), read before and
            after a window

The unix port's time.ticks_us() is CLOCK_MONOTONIC in us (checked: same clock), so a device
time from SimBench.now_us() maps onto the sibling's records directly.

    with HostStalls() as hs:
        t0 = time.monotonic_ns()
        ...                                    # one measurement
        hs.stall_ms(t0, time.monotonic_ns())   # host stall overlapping it (ms)
"""
import os
import subprocess
import sys
import threading
import time

_SIBLING = r"""
import os, sys, time
th = int(sys.argv[1]) * 1000000
ppid = os.getppid()
last = time.monotonic_ns()
n = 0
while True:
    time.sleep(0.001)
    now = time.monotonic_ns()
    if now - last > th:
        sys.stdout.write("%d %d\n" % (last, now))
        sys.stdout.flush()
    last = now
    n += 1
    if n % 200 == 0 and os.getppid() != ppid:
        break  # the bench died: do not outlive it
"""


class HostStalls:
    def __init__(self, threshold_ms=5):
        self.threshold_ms = threshold_ms
        self.gaps = []  # [start_ns, end_ns] of each sibling wake-up later than threshold
        self._lock = threading.Lock()
        self._proc = subprocess.Popen([sys.executable, "-c", _SIBLING, str(threshold_ms)],
                                      stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self._proc.stdout:
            try:
                a, b = line.split()
                with self._lock:
                    self.gaps.append((int(a), int(b)))
            except ValueError:
                pass

    def stall_ms(self, t0_ns, t1_ns):
        """Sum of the sibling's late wake-ups overlapping [t0_ns, t1_ns] (ms; the expected
        1 ms sleep is not counted)."""
        s = 0
        with self._lock:
            for a, b in self.gaps:
                lo, hi = max(a, t0_ns), min(b, t1_ns)
                if hi > lo:
                    s += hi - lo
        return s / 1e6

    def max_gap_ms(self, t0_ns=0, t1_ns=1 << 62):
        m = 0
        with self._lock:
            for a, b in self.gaps:
                if b > t0_ns and a < t1_ns and b - a > m:
                    m = b - a
        return m / 1e6

    def summary(self, t0_ns, t1_ns):
        with self._lock:
            gs = [(b - a) / 1e6 for a, b in self.gaps if b > t0_ns and a < t1_ns]
        return {"threshold_ms": self.threshold_ms, "gaps": len(gs),
                "max_gap_ms": round(max(gs), 1) if gs else 0.0,
                "total_ms": round(sum(gs), 1)}

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._thread.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_delay_ns(pid):
    """Total time the threads of process pid waited runnable for a CPU (ns), or None
    where /proc/<pid>/task/*/schedstat is not available."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total


def device_to_host_ns(t_us):
    """Device time (unix port ticks_us, CLOCK_MONOTONIC in us) as host monotonic ns."""
    return t_us * 1000


if __name__ == "__main__":  # how stalled is this host right now? (10 s)
    with HostStalls() as hs:
        t0 = time.monotonic_ns()
        time.sleep(10)
        print(hs.summary(t0, time.monotonic_ns()))

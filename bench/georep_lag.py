#!/usr/bin/env python3
"""Geo-replication workloads for scripts/bench-georep: write on a primary mount, watch a
secondary mount until the same content is readable there, print what it took.

Every subcommand prints `key value` lines (seconds unless the key says otherwise) that
scripts/bench-georep collects; progress goes to stderr. The watcher only reads through the
secondary mount, as a user at the secondary site would: a file counts as replicated when a
fresh open() and read() there return exactly the bytes written on the primary.

  single  PRIMARY_DIR SECONDARY_DIR N          one file at a time, N times: lag from close()
  steady  PRIMARY_DIR SECONDARY_DIR RATE SECS  RATE files/s for SECS: per-file lag from close()
  burst   PRIMARY_DIR SECONDARY_DIR N SIZE     N files of SIZE bytes as fast as possible
  tree-write DIR MANIFEST FILES BIG BIG_MIB    a mixed tree (1-64 KiB files + BIG files)
  tree-wait  DIR MANIFEST TIMEOUT              until DIR holds the manifest's tree
  file-wait  PATH SIZE MD5 TIMEOUT             until PATH has SIZE bytes with this md5
  small-writes PATH N SIZE SEED                N random SIZE-byte writes in place; prints md5
"""
import hashlib
import os
import random
import sys
import threading
import time

BLOCK = 4096


def now():
    return time.monotonic()


def log(msg):
    print("georep_lag: " + msg, file=sys.stderr, flush=True)


def write_file(path, data):
    """Create (or replace) path with data; returns when close() returned (acknowledged)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def forget_pages(f):
    """Drop the kernel's cached pages of an open file first. A FUSE mount may keep a file's
    pages across opens (GlusterFS does, when size and mtime end up as before: rsync --inplace
    of small writes into a big file keeps both); the watcher must see what the bricks hold."""
    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def read_matches(path, data):
    try:
        with open(path, "rb", buffering=0) as f:
            forget_pages(f)
            got = f.read(len(data) + 1)
    except OSError:
        return False
    return got == data


def content(tag, size, rng):
    head = ("%s %.9f\n" % (tag, time.time())).encode()
    return head + rng.randbytes(max(0, size - len(head)))


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(1, min(len(v), int(-(-p * len(v) // 100))))
    return v[k - 1]


def summary(prefix, lags):
    print("%s_n %d" % (prefix, len(lags)))
    if lags:
        print("%s_p50 %.3f" % (prefix, pct(lags, 50)))
        print("%s_p99 %.3f" % (prefix, pct(lags, 99)))
        print("%s_max %.3f" % (prefix, max(lags)))
        print("%s_mean %.3f" % (prefix, sum(lags) / len(lags)))


class Watcher:
    """Polls the secondary for files written on the primary. One readdir per directory that
    still has pending files per round, then a read of each listed pending file: a round costs
    a few syscalls per pending file, whatever the lag, so a slow product is not slowed more
    by a bigger polling load."""

    def __init__(self, secondary, interval):
        self.secondary = secondary
        self.interval = interval
        self.lock = threading.Lock()
        self.pending = {}  # relpath -> (data, t_ack)
        self.seen = {}  # relpath -> t_visible
        self.acked = {}  # relpath -> t_ack

    def add(self, rel, data, t_ack):
        with self.lock:
            self.pending[rel] = data
            self.acked[rel] = t_ack

    def round(self):
        with self.lock:
            items = list(self.pending.items())
        by_dir = {}
        for rel, data in items:
            by_dir.setdefault(os.path.dirname(rel), []).append((rel, data))
        for d, files in by_dir.items():
            try:
                names = set(os.listdir(os.path.join(self.secondary, d)))
            except OSError:
                continue
            for rel, data in files:
                if os.path.basename(rel) not in names:
                    continue
                if read_matches(os.path.join(self.secondary, rel), data):
                    t = now()
                    with self.lock:
                        self.pending.pop(rel, None)
                        self.seen[rel] = t

    def wait_all(self, deadline):
        while True:
            self.round()
            with self.lock:
                if not self.pending:
                    return True
            if now() > deadline:
                return False
            time.sleep(self.interval)

    def lags(self):
        return [self.seen[r] - self.acked[r] for r in self.seen]


def cmd_single(primary, secondary, n, timeout=60.0):
    n = int(n)
    rng = random.Random(1)
    os.makedirs(os.path.join(primary, "single"), exist_ok=True)
    lags, timeouts = [], 0
    for i in range(n):
        rel = "single/f%04d" % i
        data = content("single %d" % i, BLOCK, rng)
        w = Watcher(secondary, 0.005)
        write_file(os.path.join(primary, rel), data)
        w.add(rel, data, now())
        if w.wait_all(now() + timeout):
            lags.extend(w.lags())
        else:
            timeouts += 1
            log("single: %s not on the secondary after %.0f s" % (rel, timeout))
        if (i + 1) % 10 == 0:
            log("single: %d/%d, last lag %.3f s" % (i + 1, n, lags[-1] if lags else -1))
        time.sleep(0.2)  # the next file starts from a quiet pipeline
    summary("single", lags)
    print("single_timeouts %d" % timeouts)


def cmd_steady(primary, secondary, rate, secs, timeout=120.0):
    rate, secs = float(rate), float(secs)
    total = int(rate * secs)
    rng = random.Random(2)
    for d in range(total // 100 + 1):
        os.makedirs(os.path.join(primary, "steady", "d%03d" % d), exist_ok=True)
    w = Watcher(secondary, 0.02)
    behind = [0.0]

    def writer():
        start = now()
        for k in range(total):
            due = start + k / rate
            t = now()
            if t < due:
                time.sleep(due - t)
            else:
                behind[0] = max(behind[0], t - due)
            rel = "steady/d%03d/f%05d" % (k // 100, k)
            data = content("steady %d" % k, BLOCK, rng)
            write_file(os.path.join(primary, rel), data)
            w.add(rel, data, now())
        behind.append(now() - start)

    th = threading.Thread(target=writer)
    th.start()
    while th.is_alive():
        w.round()
        time.sleep(w.interval)
    th.join()
    ok = w.wait_all(now() + timeout)
    lags = w.lags()
    summary("steady", lags)
    print("steady_missing %d" % (total - len(lags)))
    print("steady_write_secs %.3f" % behind[-1])
    print("steady_writer_max_behind %.3f" % behind[0])
    if not ok:
        log("steady: %d files not on the secondary after %.0f s" % (total - len(lags), timeout))


def cmd_burst(primary, secondary, n, size, timeout=300.0):
    n, size = int(n), int(size)
    rng = random.Random(3)
    for d in range(n // 100 + 1):
        os.makedirs(os.path.join(primary, "burst", "d%02d" % d), exist_ok=True)
    w = Watcher(secondary, 0.05)
    files = [("burst/d%02d/f%05d" % (k // 100, k), content("burst %d" % k, size, rng))
             for k in range(n)]
    t0 = now()
    for rel, data in files:
        write_file(os.path.join(primary, rel), data)
        w.add(rel, data, now())
    t_written = now()
    ok = w.wait_all(t0 + timeout)
    t_end = max(w.seen.values()) if w.seen else now()
    print("burst_write_secs %.3f" % (t_written - t0))
    print("burst_total_secs %.3f" % (t_end - t0))
    print("burst_after_write_secs %.3f" % (t_end - t_written))
    print("burst_missing %d" % (n - len(w.seen)))
    if not ok:
        log("burst: %d files not on the secondary after %.0f s" % (n - len(w.seen), timeout))


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb", buffering=0) as f:
        forget_pages(f)
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def cmd_tree_write(root, manifest, files, big, big_mib):
    """Deterministic tree: FILES files of 1-64 KiB in 50 directories (two levels), plus BIG
    files of BIG_MIB MiB. Writes MANIFEST (relpath size md5) and prints its totals."""
    files, big, big_mib = int(files), int(big), int(big_mib)
    rng = random.Random(5)
    entries = []
    t0 = now()
    for k in range(files):
        rel = "tree/a%d/b%02d/f%05d" % (k % 5, k % 50, k)
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        data = rng.randbytes(rng.randint(1, 64) * 1024)
        write_file(os.path.join(root, rel), data)
        entries.append((rel, len(data), hashlib.md5(data).hexdigest()))
    for k in range(big):
        rel = "tree/big/m%02d" % k
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        data = rng.randbytes(big_mib << 20)
        write_file(os.path.join(root, rel), data)
        entries.append((rel, len(data), hashlib.md5(data).hexdigest()))
    with open(manifest, "w") as f:
        for e in entries:
            f.write("%s %d %s\n" % e)
    print("tree_files %d" % len(entries))
    print("tree_bytes %d" % sum(e[1] for e in entries))
    print("tree_write_secs %.3f" % (now() - t0))


def cmd_tree_wait(root, manifest, timeout):
    """Until every manifest file under root has its size and md5. A file is read only once
    its size is right, and never again once it matched, so the polling load shrinks as the
    copy completes."""
    timeout = float(timeout)
    pending = {}
    with open(manifest) as f:
        for line in f:
            rel, size, md5 = line.split()
            pending[rel] = (int(size), md5)
    t0 = now()
    last_log = t0
    total = len(pending)
    while pending:
        for rel, (size, md5) in list(pending.items()):
            p = os.path.join(root, rel)
            try:
                if os.stat(p).st_size != size:
                    continue
                if md5_of(p) == md5:
                    del pending[rel]
            except OSError:
                continue
        if not pending:
            break
        if now() - t0 > timeout:
            print("tree_missing %d" % len(pending))
            log("tree-wait: %d of %d files not complete after %.0f s, e.g. %s"
                % (len(pending), total, timeout, sorted(pending)[0]))
            return 1
        if now() - last_log > 10:
            log("tree-wait: %d of %d files complete" % (total - len(pending), total))
            last_log = now()
        time.sleep(0.2)
    print("tree_wait_secs %.3f" % (now() - t0))
    print("tree_missing 0")
    return 0


def cmd_file_wait(path, size, md5, timeout):
    size, timeout = int(size), float(timeout)
    t0 = now()
    checks = 0
    while True:
        try:
            if os.stat(path).st_size == size:
                c0 = now()
                got = md5_of(path)
                checks += 1
                if got == md5:
                    print("file_wait_secs %.3f" % (now() - t0))
                    print("file_md5_read_secs %.3f" % (now() - c0))
                    print("file_md5_checks %d" % checks)
                    return 0
        except OSError:
            pass
        if now() - t0 > timeout:
            log("file-wait: %s has not got md5 %s after %.0f s" % (path, md5, timeout))
            print("file_wait_secs nan")
            return 1
        time.sleep(0.05)


def cmd_small_writes(path, n, size, seed):
    n, size = int(n), int(size)
    rng = random.Random(int(seed))
    t0 = now()
    with open(path, "r+b") as f:
        length = os.fstat(f.fileno()).st_size
        for _ in range(n):
            f.seek(rng.randrange(0, length - size))
            f.write(rng.randbytes(size))
    print("small_writes_secs %.3f" % (now() - t0))
    print("small_writes_md5 %s" % md5_of(path))


def main(argv):
    cmds = {
        "single": cmd_single, "steady": cmd_steady, "burst": cmd_burst,
        "tree-write": cmd_tree_write, "tree-wait": cmd_tree_wait, "file-wait": cmd_file_wait,
        "small-writes": cmd_small_writes,
    }
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    rc = cmds[argv[1]](*argv[2:])
    sys.stdout.flush()
    return rc or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

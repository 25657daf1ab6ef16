#!/usr/bin/env python3
"""A seeded, randomized file system workload for the geo-replication tests.

usage: georep_workload.py DIR SEED OPS

Runs OPS random operations under DIR: creates, writes at random offsets, appends, truncates,
renames (same directory, across directories, over existing files and over empty directories),
hardlinks, symlinks, unlinks, rmdir of whole trees (children first, as `rm -r` does), chmod,
chown, utimes and user xattrs. Every operation either succeeds or fails the way POSIX says it
may (ENOENT, EEXIST, ENOTEMPTY...), and the run is reproducible from its seed. Prints a summary
of what it did.
"""
import errno
import os
import random
import shutil
import sys


def main():
    root, seed, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    base = os.path.join(root, "w%d" % seed)
    os.makedirs(base, exist_ok=True)
    dirs = [base]
    files = []
    done = {}

    def name():
        return "n%d" % rng.randrange(40)

    def pick(lst):
        return lst[rng.randrange(len(lst))] if lst else None

    def refresh():
        dirs[:] = []
        files[:] = []
        for d, sub, fs in os.walk(base):
            dirs.append(d)
            for f in fs:
                files.append(os.path.join(d, f))

    for i in range(ops):
        if i % 50 == 0:
            refresh()
        op = rng.choice(["create", "create", "write", "write", "append", "truncate", "mkdir",
                         "rename", "rename", "renamedir", "link", "symlink", "unlink", "rmtree",
                         "chmod", "chown", "utime", "xattr", "rmxattr"])
        try:
            if op == "create":
                p = os.path.join(pick(dirs), name())
                with open(p, "wb") as f:
                    f.write(rng.randbytes(rng.randrange(0, 20000)))
            elif op == "write" and files:
                p = pick(files)
                with open(p, "r+b") as f:
                    f.seek(rng.randrange(0, 200000))
                    f.write(rng.randbytes(rng.randrange(1, 8192)))
            elif op == "append" and files:
                with open(pick(files), "ab") as f:
                    f.write(rng.randbytes(rng.randrange(1, 4096)))
            elif op == "truncate" and files:
                os.truncate(pick(files), rng.randrange(0, 30000))
            elif op == "mkdir":
                os.mkdir(os.path.join(pick(dirs), "d" + name()))
            elif op == "rename" and files:
                os.rename(pick(files), os.path.join(pick(dirs), name()))
            elif op == "renamedir" and len(dirs) > 1:
                src = pick(dirs[1:])
                dst = os.path.join(pick(dirs), "d" + name())
                if not (dst + "/").startswith(src + "/"):
                    os.rename(src, dst)
            elif op == "link" and files:
                os.link(pick(files), os.path.join(pick(dirs), name()))
            elif op == "symlink":
                os.symlink("target-%d" % rng.randrange(1000), os.path.join(pick(dirs), name()))
            elif op == "unlink" and files:
                os.unlink(pick(files))
            elif op == "rmtree" and len(dirs) > 1 and rng.random() < 0.3:
                shutil.rmtree(pick(dirs[1:]))
            elif op == "chmod" and files:
                os.chmod(pick(files), rng.choice([0o600, 0o644, 0o640, 0o755, 0o700]))
            elif op == "chown" and files:
                os.chown(pick(files), rng.randrange(1000, 1005), rng.randrange(1000, 1005),
                         follow_symlinks=False)
            elif op == "utime" and files:
                t = 1600000000 + rng.randrange(10 ** 8)
                os.utime(pick(files), ns=(t * 10 ** 9 + rng.randrange(10 ** 9),
                                          t * 10 ** 9 + rng.randrange(10 ** 9)))
            elif op == "xattr" and files:
                os.setxattr(pick(files), "user.k%d" % rng.randrange(4), rng.randbytes(rng.randrange(1, 64)))
            elif op == "rmxattr" and files:
                os.removexattr(pick(files), "user.k%d" % rng.randrange(4))
            else:
                continue
            done[op] = done.get(op, 0) + 1
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR,
                               errno.ENOTDIR, errno.EINVAL, errno.ENODATA, errno.EBUSY):
                raise
            refresh()
    print("workload seed %d: %s" % (seed, " ".join("%s=%d" % kv for kv in sorted(done.items()))))


if __name__ == "__main__":
    main()

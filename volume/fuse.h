// FuseMount: a VolumeClient served to the kernel as a file system, through libfuse3's low-level
// API with a multi-threaded session loop. `drfs mount` (cli/mount_cmd.cc) builds one; the mount
// shows up as type fuse.drfs, source "HOST:/VOLUME".
//
// - Objects are named to the kernel by node ids mapped to gfids (volume/detail/inode_table.h);
//   stat(2) shows the gfid's last 8 bytes as st_ino, so inode numbers are the same on every
//   mount. The root is FUSE_ROOT_ID and the root gfid.
// - Permissions: the mount uses `default_permissions`, so the kernel checks access from the
//   attributes we return (mode, uid, gid), as for a local file system; the bricks run as root
//   and check nothing for the caller. New objects belong to the caller's uid and gid (the
//   parent's gid when the parent directory is setgid; a new directory then is setgid too),
//   with the caller's umask applied. `allow_other` is on by default, so every user sees the
//   mount, as with GlusterFS.
// - Caching: the kernel caches names for entry_timeout and attributes for attr_timeout; a name
//   found missing is cached for negative_timeout. The defaults (1 s, 1 s, 0 s) favour seeing
//   changes made through another mount quickly. The kernel's writeback cache is off, and a
//   file's cached pages are dropped when it is opened (close-to-open consistency between
//   mounts). Writes of up to 1 MiB go to the volume in one request. Write-behind (on by
//   default, write_behind_window) answers a write(2) before the bricks have it, as GlusterFS's
//   write-behind does: this mount's reads, stats and listings of the file wait for it, close(2)
//   and fsync(2) return only once it is on a quorum and report its error; another mount sees it
//   once it lands (at the latest when the writer's close returns). With the window at 0 every
//   write(2) reaches the bricks before it returns.
// - security.selinux is answered here (absent; not settable) unless the selinux option is on,
//   as GlusterFS's fuse client does: `ls -l` asks for it on every entry.
// - Errors are the errno of the client's Status (sys_errno()); EIO when it has none.
//
// The VolumeClient must outlive the FuseMount.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "volume/client.h"

namespace drfs::volume {

struct FuseOptions {
  std::string fsname;       // the mount's source, "HOST:/VOLUME"
  bool read_only = false;   // a read-only mount (the kernel refuses writes with EROFS)
  bool allow_other = true;  // every user may use the mount, not only the one who mounted it
  double entry_timeout = 1.0;     // seconds the kernel caches a name
  double attr_timeout = 1.0;      // seconds the kernel caches attributes
  double negative_timeout = 0.0;  // seconds the kernel caches "no such name"
  unsigned max_threads = 16;      // request threads of the session loop
  unsigned max_write = 1u << 20;  // largest write the kernel sends in one request
  // Write-behind: up to this many bytes of writes per file are answered before the bricks have
  // them (each write still waits for the ones it overlaps). Their errors come back from the
  // file's next write, flush (close) or fsync; fsync and close return only once every write
  // before them is on a quorum of bricks. 0: every write(2) waits for the bricks.
  size_t write_behind_window = 4u << 20;
  bool debug = false;             // log every FUSE request (libfuse's -d)
  // SELinux labels pass through to the bricks. Off (as GlusterFS's fuse client without -o
  // selinux): security.selinux is absent (ENODATA) without asking a brick, and setting it is
  // EOPNOTSUPP. `ls -l` asks for it on every entry, a brick round trip each.
  bool selinux = false;
  // Mount flags passed through to libfuse and the kernel: "nosuid", "noexec", "noatime", ...
  std::vector<std::string> kernel_options;
};

class FuseMount {
 public:
  // Checks that the volume's root answers, then mounts it at `mountpoint` (an existing
  // directory). Requests wait in the kernel until Serve() runs.
  static Result<std::unique_ptr<FuseMount>> Mount(VolumeClient* client,
                                                  const std::string& mountpoint,
                                                  const FuseOptions& options);
  ~FuseMount();  // unmounts if still mounted
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Serves requests on a pool of threads until the file system is unmounted (by Unmount(),
  // umount(8) or fusermount3 -u). Call once.
  Status Serve();
  // Unmounts, which ends Serve(); callable from any thread. A mount still in use (an open
  // file, a shell's working directory) is detached: new users no longer see it, the ones it
  // has keep working, and Serve() returns when the last of them lets go.
  Status Unmount();
  // Ends the kernel connection now (through /sys/fs/fuse/connections): the mount's remaining
  // users get ENOTCONN and Serve() returns. For a detached mount whose users hang on.
  Status Abort();

  const std::string& mountpoint() const;

  struct Impl;

 private:
  explicit FuseMount(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drfs::volume

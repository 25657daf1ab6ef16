// drfs: the command line of the drfs distributed file system.
#include <cstring>
#include <iostream>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: drfs <group> <command> [args...]\n"
    "\n"
    "drfs is a replicated file system with geo-replication for disaster recovery.\n"
    "\n"
    "Groups:\n"
    "  daemon      run drfsd, the node daemon that keeps the configuration and runs the bricks\n"
    "  peer        form the pool of nodes of one site (probe, detach, status)\n"
    "  volume      create, start, stop, inspect and configure volumes (run 'drfs volume help')\n"
    "  mount       mount a volume: drfs mount HOST:/VOLUME MOUNTPOINT [-o OPTIONS]\n"
    "  umount      unmount it: drfs umount MOUNTPOINT\n"
    "  georep      geo-replication to a secondary site through Kafka (create, start, status,\n"
    "              checkpoint, verify; run 'drfs georep help')\n"
    "  brick       serve a brick directory over the network, or send it one op (serve, op)\n"
    "  changelog   inspect and manage a brick's mutation journal (dump, status, purge, cursor)\n"
    "  cert        create the site CA and issue TLS certificates (create-ca, issue, show)\n"
    "  version     print the version\n"
    "\n"
    "Run 'drfs <group> --help' for a group's commands. Exit codes: 0 ok, 1 error, 2 usage.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace drfs::cli;
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  std::string group = argv[1];
  if (group == "--help" || group == "-h" || group == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (group == "version" || group == "--version") {
    std::cout << "drfs " << DRFS_VERSION << "\n";
    return kExitOk;
  }
  if (group == "changelog") return ChangelogCommand(argc, argv, 2);
  if (group == "cert") return CertCommand(argc, argv, 2);
  if (group == "brick") return BrickCommand(argc, argv, 2);
  if (group == "daemon") return DaemonCommand(argc, argv, 2);
  if (group == "peer") return PeerCommand(argc, argv, 2);
  if (group == "volume") return VolumeCommand(argc, argv, 2);
  if (group == "mount") return MountCommand(argc, argv, 2);
  if (group == "umount") return UmountCommand(argc, argv, 2);
  if (group == "georep") return GeorepCommand(argc, argv, 2);
  std::cerr << "drfs: unknown command group '" << group << "'\n\n" << kUsage;
  return kExitUsage;
}

// Entry points of the drfs subcommand groups. Each takes the full argv and the index of the
// first argument after its group name, and returns the process exit code.
#pragma once

namespace drfs::cli {

int ChangelogCommand(int argc, char** argv, int first);
int CertCommand(int argc, char** argv, int first);
int BrickCommand(int argc, char** argv, int first);
int DaemonCommand(int argc, char** argv, int first);
int PeerCommand(int argc, char** argv, int first);
int VolumeCommand(int argc, char** argv, int first);
int MountCommand(int argc, char** argv, int first);
int UmountCommand(int argc, char** argv, int first);
int GeorepCommand(int argc, char** argv, int first);

}  // namespace drfs::cli

"""The corosync client library protocols (what libcpg, libcmap, ... send and expect
over libqb IPC), shared by the daemon's services and the Python clients."""

"""pytotem: a corosync-compatible cluster messaging layer."""

__version__ = "0.1.0"

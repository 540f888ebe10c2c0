"""Authenticated encryption of udpu datagrams (corosync 2.x's totemcrypto envelope)."""

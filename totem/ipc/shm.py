"""The shm transport's three rings of one connection (spec client-ipc.md §1.6).

Requests travel client -> server in ``<prefix>-request-<svc>``, responses and events
server -> client in ``<prefix>-response-<svc>`` and ``<prefix>-event-<svc>``. Each
request and each event is also announced by one byte on the setup socket; the byte
handling belongs to the server and client, these classes only move chunks.
"""

from __future__ import annotations

from .handshake import IPC_SHM
from .ringbuffer import USER_DATA_SIZE, Ring


class ShmServerChannels:
    """The server's side: creates the rings, owned by the client."""

    connection_type = IPC_SHM
    wakeup_bytes = True
    """Requests and events are announced by one byte each on the setup socket."""
    request_fd: int | None = None
    """No separate socket to wait on: requests are announced on the setup socket."""

    def __init__(self, prefix: str, service: str, max_msg_size: int, uid: int, gid: int) -> None:
        rings: list[Ring] = []
        try:
            for kind in ("request", "response", "event"):
                # libqb's server gives all three rings the int32 of user data.
                rings.append(Ring.create(f"{prefix}-{kind}-{service}", max_msg_size,
                                         uid=uid, gid=gid, user_data_size=USER_DATA_SIZE))
        except BaseException:
            for ring in rings:
                ring.close(unlink=True)
            raise
        self.request, self.response, self.event = rings
        self.names = (self.request.name, self.response.name, self.event.name)

    def take_request(self) -> bytes | None:
        """The next committed request chunk, or None."""
        return self.request.try_read()

    def put_response(self, data: bytes) -> bool:
        return self.response.write(data)

    def put_event(self, data: bytes) -> bool:
        return self.event.write(data)

    def set_flow_control(self, level: int) -> None:
        self.request.flow_control = level

    def intact(self) -> bool:
        """All six files still there at full size (see :meth:`Ring.files_intact`)."""
        return all(r.files_intact() for r in (self.request, self.response, self.event))

    def close(self) -> None:
        """Drop our reference (a libqb client then refuses to send) and remove the files."""
        for ring in (self.request, self.response, self.event):
            if not ring.closed:
                ring.add_ref(-1)
                ring.close(unlink=True)


class ShmClientChannels:
    """The client's side: opens the rings named in the connection response.

    As libqb's client, the request ring is opened with its int32 of user data (the
    flow-control word) and the response and event rings without.
    """

    connection_type = IPC_SHM

    def __init__(self, names: tuple[str, str, str], max_msg_size: int) -> None:
        rings: list[Ring] = []
        try:
            for name, user in zip(names, (USER_DATA_SIZE, 0, 0)):
                rings.append(Ring.open(name, max_msg_size, user_data_size=user))
        except BaseException:
            for ring in rings:
                ring.add_ref(-1)
                ring.close(unlink=False)
            raise
        self.request, self.response, self.event = rings

    @property
    def flow_control(self) -> int:
        return self.request.flow_control

    def server_attached(self) -> bool:
        """libqb's check before every send: the request ring has exactly two users."""
        return self.request.ref_count == 2

    def put_request(self, data: bytes) -> bool:
        return self.request.write(data)

    def close(self, *, server_gone: bool) -> None:
        """Drop our references; unlink the files too when the server is dead (libqb's
        client does the same so that a crashed server leaves less behind)."""
        for ring in (self.request, self.response, self.event):
            if not ring.closed:
                ring.add_ref(-1)
                ring.close(unlink=server_gone)

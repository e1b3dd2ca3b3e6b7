"""HTTP/2 frames by hand, for the hostile-client suite: just enough of RFC
9113 and HPACK (RFC 7541) to write what an attacker writes and to read
whether a stream was answered. Standard library only."""

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    """A header field as a literal without indexing, no Huffman coding."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def get_block(path=b"/", authority=b"127.0.0.1"):
    """:method GET, :scheme http, :path, :authority as one header block."""
    block = b"\x82\x86"  # static table: :method GET, :scheme http
    block += b"\x84" if path == b"/" else literal(b":path", path)
    return block + literal(b":authority", authority)


def post_block(path=b"/"):
    return b"\x83\x86" + (b"\x84" if path == b"/" else literal(b":path", path)) + literal(b":authority", b"127.0.0.1")


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def hello():
    """The client's preface and an empty SETTINGS frame."""
    return PREFACE + settings()


class Reader:
    """Splits what a server sends into frames, and answers its SETTINGS."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.goaway = None  # the error code of a GOAWAY received

    def frames(self):
        """Reads once; yields the whole frames now buffered. An empty read
        (the server closed) raises EOFError."""
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError
        self.buf += chunk
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            kind, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            if kind == SETTINGS and not flags & ACK:
                self.sock.sendall(frame(SETTINGS, ACK, 0))
            if kind == GOAWAY and len(payload) >= 8:
                self.goaway = int.from_bytes(payload[4:8], "big")
            yield kind, flags, stream, payload

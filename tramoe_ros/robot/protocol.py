"""Dynamixel Protocol 2.0 packet framing, the servo side: CRC-16, byte stuffing, parsing instruction packets from
a byte stream and building status packets. The emulator speaks through these; the driver uses dynamixel_sdk.

Packet: FF FF FD 00 | ID | LEN_L LEN_H | INSTRUCTION | PARAMETERS... | CRC_L CRC_H
LEN counts the instruction, the (stuffed) parameters and the CRC. Inside the instruction and parameters, any
FF FF FD is sent as FF FF FD FD (byte stuffing), so a header never appears in a packet's body. The CRC covers
everything before it, stuffing included.
"""
from __future__ import annotations

from dataclasses import dataclass

HEADER = bytes([0xFF, 0xFF, 0xFD, 0x00])
BROADCAST_ID = 0xFE
MAX_ID = 0xFC

PING = 0x01
READ = 0x02
WRITE = 0x03
REBOOT = 0x08
STATUS = 0x55
SYNC_READ = 0x82
SYNC_WRITE = 0x83
BULK_READ = 0x92
BULK_WRITE = 0x93
INSTRUCTIONS = {PING: "ping", READ: "read", WRITE: "write", REBOOT: "reboot", SYNC_READ: "sync read",
                SYNC_WRITE: "sync write", BULK_READ: "bulk read", BULK_WRITE: "bulk write"}

# Status packet error field (bits 0..6; bit 7 is the hardware alert).
ERROR_RESULT_FAIL = 1
ERROR_INSTRUCTION = 2
ERROR_CRC = 3
ERROR_DATA_RANGE = 4
ERROR_DATA_LENGTH = 5
ERROR_DATA_LIMIT = 6
ERROR_ACCESS = 7
ERROR_ALERT = 0x80

CRC_POLYNOMIAL = 0x8005
MAX_PACKET_LENGTH = 1024  # LEN field limit of the X series' receive buffer


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLYNOMIAL) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16 of Protocol 2.0 (polynomial 0x8005, initial value 0, not reflected)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert FD after every FF FF FD inside `body` (instruction + parameters)."""
    out = bytearray()
    for byte in body:
        out.append(byte)
        if byte == 0xFD and out[-3:-1] == b"\xff\xff":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Remove the FD that stuffing inserted after every FF FF FD."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if body[i] == 0xFD and out[-3:-1] == b"\xff\xff" and i + 1 < len(body) and body[i + 1] == 0xFD:
            i += 1  # skip the stuffed FD
        i += 1
    return bytes(out)


def build_packet(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A complete packet (header, stuffed body, CRC)."""
    body = stuff(bytes([instruction]) + bytes(params))
    length = len(body) + 2
    head = HEADER + bytes([servo_id, length & 0xFF, length >> 8])
    packet = head + body
    crc = crc16(packet)
    return packet + bytes([crc & 0xFF, crc >> 8])


def status_packet(servo_id: int, error: int, params: bytes = b"") -> bytes:
    """A status packet: instruction 0x55, then the error field, then the parameters."""
    return build_packet(servo_id, STATUS, bytes([error]) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """A received packet: `params` unstuffed; `crc_ok` false when the CRC did not match."""

    servo_id: int
    instruction: int
    params: bytes
    crc_ok: bool


class PacketParser:
    """Splits a byte stream into packets: bytes before a header are skipped, as a servo does with noise."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        packets = []
        while True:
            start = self._buffer.find(HEADER)
            if start < 0:
                del self._buffer[:max(0, len(self._buffer) - 3)]  # keep a possible partial header
                return packets
            del self._buffer[:start]
            if len(self._buffer) < 7:
                return packets
            length = self._buffer[5] | self._buffer[6] << 8
            if not 3 <= length <= MAX_PACKET_LENGTH:  # cannot be a packet: resynchronise on the next header
                del self._buffer[:1]
                continue
            total = 7 + length
            if len(self._buffer) < total:
                return packets
            raw = bytes(self._buffer[:total])
            del self._buffer[:total]
            crc_ok = crc16(raw[:-2]) == (raw[-2] | raw[-1] << 8)
            body = unstuff(raw[7:-2])
            packets.append(Packet(raw[4], body[0], body[1:], crc_ok))

"""Protocol 2.0 framing on the servo side: CRC-16 against the e-Manual's example packets, byte stuffing, and the
stream parser's resynchronisation on noise and corrupt packets."""
from tramoe_ros.robot import protocol as p


def test_crc_and_framing_match_the_manual_examples():
    # PING to ID 1, and the status an XM430-W210 (model 1030, firmware 38) answers with.
    assert p.build_packet(1, p.PING) == bytes.fromhex("FFFFFD0001030001194E")
    assert p.status_packet(1, 0, bytes([0x06, 0x04, 0x26])) == bytes.fromhex("FFFFFD000107005500060426655D")
    assert p.crc16(bytes.fromhex("FFFFFD0001030001")) == 0x4E19


def test_byte_stuffing_hides_headers_inside_packets():
    params = bytes([0x74, 0x00, 0xFF, 0xFF, 0xFD, 0x00])
    packet = p.build_packet(3, p.WRITE, params)
    assert packet.count(p.HEADER) == 1  # the body's FF FF FD 00 went out as FF FF FD FD 00
    assert p.stuff(b"\xff\xff\xfd") == b"\xff\xff\xfd\xfd"
    assert p.unstuff(p.stuff(params)) == params
    length = packet[5] | packet[6] << 8
    assert length == len(packet) - 7  # LEN counts the stuffed body and the CRC
    [parsed] = p.PacketParser().feed(packet)
    assert (parsed.servo_id, parsed.instruction, parsed.params, parsed.crc_ok) == (3, p.WRITE, params, True)


def test_parser_skips_noise_reassembles_splits_and_flags_bad_crc():
    first, second = p.build_packet(1, p.READ, bytes([132, 0, 4, 0])), p.build_packet(2, p.PING)
    corrupt = bytearray(p.build_packet(5, p.PING))
    corrupt[-1] ^= 0x01
    stream = b"\x00\xfd\xff" + first + bytes(corrupt) + second
    parser = p.PacketParser()
    packets = parser.feed(stream[:9]) + parser.feed(stream[9:20]) + parser.feed(stream[20:])
    assert [(q.servo_id, q.instruction, q.crc_ok) for q in packets] == [(1, p.READ, True), (5, p.PING, False),
                                                                         (2, p.PING, True)]
    # A header with an impossible length is noise: the parser finds the next real packet.
    assert [q.servo_id for q in p.PacketParser().feed(p.HEADER + b"\x07\xff\xff" + second)] == [2]

"""rosbag2-compatible bags without rosbag2: MCAP storage plus metadata.yaml (format version 9), written through the
`rosbags` library from already-serialized (CDR) messages, and read back into rclpy message objects.

`ros2 bag info` / `ros2 bag play` and `rosbags.highlevel.AnyReader` read these bags. Each topic's message
definition is embedded (as rosbag2 does) from the interface files installed with the message package, so bags
of project-specific types (tramoe_msgs) decode on machines without those packages.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore


class BagError(RuntimeError):
    """A bag that cannot be created or read, or a message type whose definition cannot be found."""


def interface_share_dirs(package: str) -> list[Path]:
    """Where `package`'s interface files may be installed: every prefix on AMENT_PREFIX_PATH, then this Python's
    prefix (the venv, where the ROS wheels install)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / "share" / package for p in prefixes if (Path(p) / "share" / package).is_dir()]


def _qos_time(ns: int) -> QosTime:
    return QosTime(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)


def bag_qos(profile: QoSProfile) -> Qos:
    """An rclpy QoS profile in the form rosbag2 stores as a topic's offered QoS."""
    return Qos(history=QosHistory[profile.history.name], depth=profile.depth,
               reliability=QosReliability[profile.reliability.name],
               durability=QosDurability[profile.durability.name],
               deadline=_qos_time(profile.deadline.nanoseconds), lifespan=_qos_time(profile.lifespan.nanoseconds),
               liveliness=QosLiveliness[profile.liveliness.name],
               liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration.nanoseconds),
               avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions)


class BagWriter:
    """A new rosbag2 bag folder `path` (MCAP storage) receiving serialized messages.

    Topics are added when first seen (`add_topic`); `close()` writes the MCAP summary and metadata.yaml and must
    be called for the bag to be complete.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag folder {self.path} exists already; choose a new output path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: Counter[str] = Counter()

    def _register_package(self, package: str) -> None:
        """Add every message type of `package` to the type store, from its installed .msg files."""
        for share in interface_share_dirs(package):
            types = {}
            for msg_file in sorted((share / "msg").glob("*.msg")):
                types.update(get_types_from_msg(msg_file.read_text(), f"{package}/msg/{msg_file.stem}"))
            if types:
                self._typestore.register(types)
                return
        raise BagError(f"no message definitions of package {package} found under share/{package}/msg in "
                       f"AMENT_PREFIX_PATH or {sys.prefix}")

    def _ensure_definition(self, msgtype: str) -> None:
        """Make `msgtype` and every type it contains known to the type store, registering missing packages."""
        registered: set[str] = set()
        while True:
            try:
                self._typestore.generate_msgdef(msgtype, ros_version=2)
                return
            except TypesysError as e:
                match = re.search(r"Type '([^'/]+)/", str(e))
                if match is None or match.group(1) in registered:
                    raise BagError(f"cannot resolve the message definition of {msgtype}: {e}") from None
                registered.add(match.group(1))
                self._register_package(match.group(1))

    def add_topic(self, topic: str, msgtype: str, offered_qos: list[QoSProfile] | None = None) -> None:
        """Start a topic of type `msgtype` ("pkg/msg/Name"), with the QoS its publishers offer."""
        if topic in self._connections:
            return
        self._ensure_definition(msgtype)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self._typestore,
            offered_qos_profiles=[bag_qos(q) for q in offered_qos or []])

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Append one serialized (CDR) message of an added topic, received at `timestamp_ns`."""
        self._writer.write(self._connections[topic], timestamp_ns, data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Write the MCAP summary and metadata.yaml; later calls do nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def message_class(msgtype: str) -> type:
    """The rclpy class of "pkg/msg/Name"."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def read_bag(path: str | Path, topics: list[str] | None = None) -> Iterator[tuple[str, int, Any]]:
    """(topic, log time in ns, rclpy message) of every message in the bag, in log-time order."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is not a complete rosbag2 bag (no metadata.yaml; was the recorder stopped cleanly?)")
    with AnyReader([path]) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        classes = {c.msgtype: message_class(c.msgtype) for c in connections}
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield connection.topic, timestamp, deserialize_message(bytes(raw), classes[connection.msgtype])

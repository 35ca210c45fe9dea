"""Servo motors on a fake serial port, for LeRobot's own bus classes (no hardware, no servo SDK).

LeRobot's ``FeetechMotorsBus`` / ``DynamixelMotorsBus`` talk to the motors through the vendors'
Python SDKs (``scservo_sdk``, ``dynamixel_sdk``): a port handler, a packet handler and group
sync read / write. ``fake_servo_sdks()`` puts stand-ins for both modules in ``sys.modules``;
their port handler opens a ``FakeServoBus`` registered under the port name, where each motor is a
register table. So everything above the serial boundary is LeRobot's code: the handshake (ping,
model and firmware numbers), calibration registers, sign encodings, normalisation, sync read and
write, torque on and off.

    bus = FakeServoBus.for_lerobot_motors("/dev/fake0", "feetech", robot.bus.motors)
    with fake_servo_sdks():
        robot = SO101Follower(config)              # port="/dev/fake0"
        robot.connect()

The motors are ideal servos: a written Goal_Position becomes the Present_Position. Faults for
tests: ``fail_after`` (then every transaction times out, as an unplugged cable does) and
``hang_after`` (then transactions block until ``release`` is set, as a wedged USB adapter does).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

COMM_SUCCESS = 0
COMM_PORT_BUSY = -1000
COMM_TX_FAIL = -1001
COMM_RX_TIMEOUT = -3001
_RESULTS = {COMM_SUCCESS: "[TxRxResult] Communication success!", COMM_PORT_BUSY: "[TxRxResult] Port is in use!",
            COMM_TX_FAIL: "[TxRxResult] Failed transmit instruction packet!",
            COMM_RX_TIMEOUT: "[TxRxResult] There is no status packet!"}

FAKE_PORTS: dict[str, FakeServoBus] = {}  # port name -> the bus plugged into it


class FakeMotor:
    def __init__(self, motor_id: int, model_number: int, firmware: tuple[int, int]):
        self.id, self.model_number = motor_id, model_number
        self.registers = bytearray(256)
        self.firmware = firmware

    def read(self, address: int, length: int) -> int:
        return int.from_bytes(self.registers[address : address + length], "little")

    def write(self, address: int, length: int, value: int) -> None:
        self.registers[address : address + length] = int(value).to_bytes(length, "little")


class FakeServoBus:
    """Motors on one serial port. ``transactions`` counts packets exchanged (reads and writes)."""

    def __init__(self, port: str, motors: dict[int, int], goal: tuple[int, int], present: tuple[int, int],
                 model_address: tuple[int, int], firmware_address: tuple[int, int] | None = None):
        self.port = port
        self.motors = {i: FakeMotor(i, n, (3, 10)) for i, n in motors.items()}
        self.goal, self.present = goal, present
        for m in self.motors.values():  # what ping and the firmware check read
            m.write(*model_address, m.model_number)
            if firmware_address is not None:
                m.write(firmware_address[0], 1, m.firmware[0])
                m.write(firmware_address[1], 1, m.firmware[1])
        self.control_table: dict[str, tuple[int, int]] = {}
        self.transactions = 0
        self.fail_after: int | None = None
        self.hang_after: int | None = None
        self.release = threading.Event()
        self.lock = threading.Lock()
        FAKE_PORTS[port] = self

    @classmethod
    def for_lerobot_motors(cls, port: str, kind: str, motors: dict[str, Any], present_raw: int = 2048) -> FakeServoBus:
        """A bus with LeRobot ``Motor``s (``robot.bus.motors``) at their ids, positions at ``present_raw``."""
        if kind == "feetech":
            from lerobot.motors.feetech import tables
        elif kind == "dynamixel":
            from lerobot.motors.dynamixel import tables
        else:
            raise ValueError(f"kind must be feetech or dynamixel, got {kind!r}")
        models = {m.model for m in motors.values()}
        ctrl = [tables.MODEL_CONTROL_TABLE[model] for model in models]
        goal, present = ctrl[0]["Goal_Position"], ctrl[0]["Present_Position"]
        if any(c["Goal_Position"] != goal or c["Present_Position"] != present for c in ctrl):
            raise ValueError("motors with different position registers on one bus are not modelled")
        firmware = None  # only Feetech's handshake reads the firmware version
        if kind == "feetech":
            firmware = (ctrl[0]["Firmware_Major_Version"][0], ctrl[0]["Firmware_Minor_Version"][0])
        bus = cls(port, {m.id: tables.MODEL_NUMBER_TABLE[m.model] for m in motors.values()}, goal, present,
                  ctrl[0]["Model_Number"], firmware)
        bus.control_table = ctrl[0]
        for m in bus.motors.values():
            m.write(*present, present_raw)
            m.write(*goal, present_raw)
        return bus

    def set_register(self, data_name: str, raw: int, ids: list[int] | None = None) -> None:
        """Write a raw value into register ``data_name`` (LeRobot's control-table name) of the motors."""
        address, length = self.control_table[data_name]
        for i in ids if ids is not None else list(self.motors):
            self.motors[i].write(address, length, raw)

    def read_register(self, data_name: str, motor_id: int) -> int:
        return self.motors[motor_id].read(*self.control_table[data_name])

    def unplug(self) -> None:
        FAKE_PORTS.pop(self.port, None)

    # --- one transaction -----------------------------------------------------------------------------
    def _transact(self) -> int:
        """Count a packet; the fault switches decide whether it gets through."""
        with self.lock:
            self.transactions += 1
            n = self.transactions
        if self.hang_after is not None and n > self.hang_after:
            self.release.wait()
        if self.fail_after is not None and n > self.fail_after:
            return COMM_RX_TIMEOUT
        return COMM_SUCCESS

    def read(self, motor_id: int, address: int, length: int) -> tuple[int, int]:
        comm = self._transact()
        motor = self.motors.get(motor_id)
        if comm != COMM_SUCCESS or motor is None:
            return 0, COMM_RX_TIMEOUT
        return motor.read(address, length), COMM_SUCCESS

    def write(self, motor_id: int, address: int, length: int, value: int) -> int:
        comm = self._transact()
        motor = self.motors.get(motor_id)
        if comm != COMM_SUCCESS or motor is None:
            return COMM_RX_TIMEOUT
        motor.write(address, length, value)
        if (address, length) == tuple(self.goal):  # an ideal servo: it is where it was told to be
            motor.write(*self.present, value)
        return COMM_SUCCESS

    def goal_raw(self, motor_id: int) -> int:
        return self.motors[motor_id].read(*self.goal)


def _from_bytes(data) -> int:
    return int.from_bytes(bytes(int(b) & 0xFF for b in data), "little")


# --- the SDK's classes -----------------------------------------------------------------------------------
class PortHandler:
    def __init__(self, port_name: str):
        self.port_name, self.is_open, self.is_using = port_name, False, False
        self.baudrate, self.packet_timeout_ms = 1_000_000, 0.0

    @property
    def bus(self) -> FakeServoBus | None:
        return FAKE_PORTS.get(self.port_name)

    def openPort(self) -> bool:  # noqa: N802  (the SDK's names)
        self.is_open = self.bus is not None  # no bus on that port: like a wrong /dev path
        return self.is_open

    def closePort(self) -> None:  # noqa: N802
        self.is_open = False

    def clearPort(self) -> None:  # noqa: N802
        pass

    def setBaudRate(self, baudrate: int) -> bool:  # noqa: N802
        self.baudrate = baudrate
        return True

    def getBaudRate(self) -> int:  # noqa: N802
        return self.baudrate

    def setPacketTimeoutMillis(self, msec: float) -> None:  # noqa: N802
        self.packet_timeout_ms = msec

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802
        pass

    def getCurrentTime(self) -> float:  # noqa: N802
        import time

        return time.monotonic() * 1000.0


class PacketHandler:
    def __init__(self, protocol_version: float = 0):
        self.protocol_version = protocol_version

    @staticmethod
    def _bus(port: PortHandler) -> FakeServoBus | None:
        return port.bus if port.is_open else None

    def getTxRxResult(self, result: int) -> str:  # noqa: N802
        return _RESULTS.get(result, f"[TxRxResult] error {result}")

    def getRxPacketError(self, error: int) -> str:  # noqa: N802
        return f"[RxPacketError] error bits {error:#x}"

    def ping(self, port: PortHandler, motor_id: int) -> tuple[int, int, int]:
        bus = self._bus(port)
        if bus is None or motor_id not in bus.motors:
            return 0, COMM_RX_TIMEOUT, 0
        comm = bus._transact()
        return (bus.motors[motor_id].model_number if comm == COMM_SUCCESS else 0), comm, 0

    def broadcastPing(self, port: PortHandler) -> tuple[dict[int, list[int]], int]:  # noqa: N802
        bus = self._bus(port)
        if bus is None:
            return {}, COMM_RX_TIMEOUT
        return {i: [m.model_number, m.firmware[0]] for i, m in bus.motors.items()}, COMM_SUCCESS

    def _read(self, port: PortHandler, motor_id: int, address: int, length: int) -> tuple[int, int, int]:
        bus = self._bus(port)
        if bus is None:
            return 0, COMM_PORT_BUSY, 0
        value, comm = bus.read(motor_id, address, length)
        return value, comm, 0

    def read1ByteTxRx(self, port, motor_id, address):  # noqa: N802
        return self._read(port, motor_id, address, 1)

    def read2ByteTxRx(self, port, motor_id, address):  # noqa: N802
        return self._read(port, motor_id, address, 2)

    def read4ByteTxRx(self, port, motor_id, address):  # noqa: N802
        return self._read(port, motor_id, address, 4)

    def writeTxRx(self, port: PortHandler, motor_id: int, address: int, length: int, data) -> tuple[int, int]:  # noqa: N802
        bus = self._bus(port)
        if bus is None:
            return COMM_PORT_BUSY, 0
        return bus.write(motor_id, address, length, _from_bytes(data)), 0


class GroupSyncRead:
    def __init__(self, port: PortHandler, ph: PacketHandler, start_address: int, data_length: int):
        self.port, self.ph, self.start_address, self.data_length = port, ph, start_address, data_length
        self.ids: list[int] = []
        self.data: dict[int, int] = {}

    def clearParam(self) -> None:  # noqa: N802
        self.ids, self.data = [], {}

    def addParam(self, motor_id: int) -> bool:  # noqa: N802
        self.ids.append(motor_id)
        return True

    def txRxPacket(self) -> int:  # noqa: N802
        bus = PacketHandler._bus(self.port)
        if bus is None:
            return COMM_PORT_BUSY
        comm = bus._transact()  # one packet for the whole group
        if comm != COMM_SUCCESS:
            return comm
        if any(i not in bus.motors for i in self.ids):
            return COMM_RX_TIMEOUT
        self.data = {i: bus.motors[i].read(self.start_address, self.data_length) for i in self.ids}
        return COMM_SUCCESS

    def isAvailable(self, motor_id: int, address: int, data_length: int) -> bool:  # noqa: N802
        return motor_id in self.data

    def getData(self, motor_id: int, address: int, data_length: int) -> int:  # noqa: N802
        return self.data.get(motor_id, 0)


class GroupSyncWrite:
    def __init__(self, port: PortHandler, ph: PacketHandler, start_address: int, data_length: int):
        self.port, self.ph, self.start_address, self.data_length = port, ph, start_address, data_length
        self.params: dict[int, int] = {}

    def clearParam(self) -> None:  # noqa: N802
        self.params = {}

    def addParam(self, motor_id: int, data) -> bool:  # noqa: N802
        self.params[motor_id] = _from_bytes(data)
        return True

    def txPacket(self) -> int:  # noqa: N802
        bus = PacketHandler._bus(self.port)
        if bus is None:
            return COMM_PORT_BUSY
        comm = bus._transact()
        if comm != COMM_SUCCESS:
            return comm
        for motor_id, value in self.params.items():  # no status packet: unknown ids are silently lost
            if motor_id in bus.motors:
                bus.motors[motor_id].write(self.start_address, self.data_length, value)
                if (self.start_address, self.data_length) == tuple(bus.goal):
                    bus.motors[motor_id].write(*bus.present, value)
        return COMM_SUCCESS


# --- the two modules --------------------------------------------------------------------------------------
def _lobyte(w: int) -> int:
    return w & 0xFF


def _hibyte(w: int) -> int:
    return (w >> 8) & 0xFF


def _loword(d: int) -> int:
    return d & 0xFFFF


def _hiword(d: int) -> int:
    return (d >> 16) & 0xFFFF


def sdk_module(name: str, prefix: str) -> types.ModuleType:
    """A stand-in for ``scservo_sdk`` (prefix SCS) or ``dynamixel_sdk`` (prefix DXL)."""
    module = types.ModuleType(name, f"fake {name} (embodied.robots.testing.fake_servo)")
    for cls in (PortHandler, PacketHandler, GroupSyncRead, GroupSyncWrite):
        setattr(module, cls.__name__, cls)
    module.COMM_SUCCESS, module.COMM_PORT_BUSY = COMM_SUCCESS, COMM_PORT_BUSY
    module.COMM_TX_FAIL, module.COMM_RX_TIMEOUT = COMM_TX_FAIL, COMM_RX_TIMEOUT
    module.BROADCAST_ID, module.MAX_ID = 0xFE, 0xFC
    module.PKT_ID, module.PKT_LENGTH, module.PKT_INSTRUCTION, module.PKT_ERROR = 2, 3, 4, 4
    module.INST_PING = 1
    for what, fn in (("LOBYTE", _lobyte), ("HIBYTE", _hibyte), ("LOWORD", _loword), ("HIWORD", _hiword)):
        setattr(module, f"{prefix}_{what}", fn)
    return module


@contextlib.contextmanager
def fake_servo_sdks() -> Iterator[None]:
    """``scservo_sdk`` and ``dynamixel_sdk`` are the fakes inside the block (the real ones, if any, after)."""
    saved = {name: sys.modules.get(name) for name in ("scservo_sdk", "dynamixel_sdk")}
    sys.modules["scservo_sdk"] = sdk_module("scservo_sdk", "SCS")
    sys.modules["dynamixel_sdk"] = sdk_module("dynamixel_sdk", "DXL")
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

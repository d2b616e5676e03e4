"""The options of the OSDP adapter, as ``[adapters.<name>]`` in ``plugins.toml`` gives them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

LedColor = Literal["off", "red", "green", "amber", "blue", "magenta", "cyan", "white"]


class SerialBus(BaseModel):
    """An RS-485 adapter on this machine: ``transport = { serial = "/dev/ttyUSB0", baud = 9600 }``."""

    model_config = ConfigDict(extra="forbid")

    serial: Path = Field(description="the serial device; /dev/serial/by-id/... survives re-plugging")
    baud: Literal[9600, 19200, 38400, 57600, 115200, 230400] = 9600


class TcpBus(BaseModel):
    """A serial-device server on the network: ``transport = { tcp = "10.0.0.5:4001" }``."""

    model_config = ConfigDict(extra="forbid")

    tcp: str = Field(description="host:port of the RS-485-to-TCP converter ([v6::addr]:port for IPv6)")
    connect_timeout: float = Field(default=2.0, gt=0, le=30)

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("expected host:port, e.g. 10.0.0.5:4001")
        return value

    @property
    def host(self) -> str:
        return self.tcp.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.tcp.rpartition(":")[2])


class Peripheral(BaseModel):
    """One OSDP reader/controller (a PD) and the door it serves."""

    model_config = ConfigDict(extra="forbid")

    address: int = Field(ge=0, le=126, description="the PD's OSDP address (0-126; 127 is broadcast)")
    door_id: str = Field(min_length=1, description="the door this PD controls, as door commands name it")
    name: str = Field(default="", description="a label for messages; defaults to the door id")
    scbk: SecretStr | None = Field(
        default=None, description='Secure Channel Base Key, 32 hex digits; use { env = "NAME" } or { file = "PATH" }'
    )
    allow_insecure: bool = Field(
        default=False, description="accept this PD without Secure Channel (cleartext, spoofable): legacy readers only"
    )
    strike_output: int = Field(default=0, ge=0, le=255, description="the PD output that drives the strike/lock relay")
    strike_seconds: float = Field(
        default=5.0, gt=0, le=25.5, description="how long momentary access releases the strike (PD timer: max 25.5 s)"
    )
    egress: bool = Field(default=False, description="the door is on an egress path (informational: shown by query)")
    reader: int = Field(default=0, ge=0, le=255, description="reader number for LED and buzzer commands")

    @field_validator("scbk")
    @classmethod
    def _scbk_is_16_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip().replace(" ", "").replace(":", "")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ValueError("scbk must be hexadecimal (32 hex digits)") from None
        if len(key) != 16:
            raise ValueError(f"scbk must be 16 bytes (32 hex digits), got {len(key)} bytes")
        return SecretStr(text)

    @model_validator(mode="after")
    def _secure_unless_allowed(self) -> Peripheral:
        if self.scbk is None and not self.allow_insecure:
            raise ValueError(
                f"peripheral {self.address} ({self.door_id}): scbk is required; Secure Channel is on by default "
                "(set allow_insecure = true only for a reader that cannot do Secure Channel)"
            )
        return self

    @property
    def label(self) -> str:
        return self.name or self.door_id

    def key(self) -> bytes | None:
        return bytes.fromhex(self.scbk.get_secret_value()) if self.scbk is not None else None


class OsdpConfig(BaseModel):
    """``[adapters.<name>]`` with ``type = "osdp"``: one OSDP bus and the PDs on it."""

    model_config = ConfigDict(extra="forbid")

    transport: SerialBus | TcpBus = Field(
        description='{ serial = "/dev/ttyUSB0", baud = 9600 } or { tcp = "host:port" } (docs/osdp.md)'
    )
    peripherals: list[Peripheral] = Field(
        min_length=1, description="[[adapters.<name>.peripherals]]: address, door_id, scbk, strike_output, ..."
    )
    startup_wait: float = Field(
        default=3.0, gt=0, le=30, description="seconds start() waits for the PDs to come online"
    )
    command_timeout: float = Field(default=2.0, gt=0, le=30, description="seconds a PD has to acknowledge a command")
    refresh_interval: float = Field(
        default=0.005, ge=0.001, le=0.05, description="seconds between libosdp refreshes (it needs one every 50 ms)"
    )
    retry_initial: float = Field(default=1.0, ge=1.0, description="first reconnect delay for an offline PD, seconds")
    retry_max: float = Field(default=30.0, ge=1.0, description="longest reconnect delay, seconds")
    idle_led: LedColor = Field(default="off", description="reader LED colour after a lockdown is released")
    lockdown_buzzer: bool = Field(default=True, description="sound the reader buzzer when a lockdown starts")
    report_card_numbers: bool = Field(
        default=True, description="put decoded facility/card numbers in card-read events (never in logs)"
    )
    holder_id_key: SecretStr | None = Field(
        default=None, description="key of the opaque credential-holder ids; generated in the data folder if unset"
    )
    library_log_level: Literal["off", "error", "warning", "info"] = Field(
        default="error", description="libosdp's own stderr logging (process-wide)"
    )

    @model_validator(mode="after")
    def _unique(self) -> OsdpConfig:
        for attribute in ("address", "door_id"):
            values = [getattr(p, attribute) for p in self.peripherals]
            duplicates = sorted({str(v) for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(
                    f"peripherals: {attribute} must be unique on one bus, repeated: {', '.join(duplicates)}"
                )
        if self.retry_max < self.retry_initial:
            raise ValueError("retry_max must not be shorter than retry_initial")
        return self

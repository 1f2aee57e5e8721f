"""An adbd emulator for tests: the real ``adb`` client talks to it over TCP (see ``server.py``)."""

from .sandbox import PhoneSpec, Sandbox
from .server import AdbdEmulator

__all__ = ["AdbdEmulator", "PhoneSpec", "Sandbox"]

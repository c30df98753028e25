"""The names the configuration chooses by, declared here as plain constants.

Each name picks an implementation that lives in its adapter: a reader source in
``scanner.read.registry``, a decoder in ``scanner.read.decode``, a keyboard layout in
``hardware.keymaps``, a pin factory in ``hardware.gpio``, a terminator in
``hardware.serial_reader``, a direction in ``scanner.decide.model``. The configuration sits
below all of them and imports none, so it cannot take the names from their registries;
tests/test_config_registries.py holds every registry's keys equal to these.
"""

from __future__ import annotations

SOURCE_NAMES = ("camera", "picamera2", "serial", "hid", "stdin")
# The reader key naming the device each source reads (one device serves one reader).
DEVICE_KEY = {"serial": "port", "hid": "device", "camera": "camera", "picamera2": "camera"}
# "auto": zxing-cpp, or pyzbar when zxing-cpp cannot import.
DECODER_NAMES = ("auto", "zxing", "pyzbar")
# reader.formats, in zxing-cpp's spelling.
BARCODE_FORMATS = ("QRCode", "Code128", "Aztec", "PDF417", "DataMatrix")
LAYOUT_NAMES = ("us", "de")
# reader.terminator's names; anything else is taken as the literal bytes.
TERMINATOR_NAMES = ("CR", "LF", "CRLF")
# gpiozero's GPIOZERO_PIN_FACTORY names: lgpio on a Pi 5 / bookworm, mock in tests and demo.
PIN_FACTORIES = ("mock", "lgpio", "rpigpio", "pigpio", "native")
DIRECTIONS = ("IN", "OUT")
CHECKOUT_POLICIES = ("allow", "deny")
# The kiosk page's catalogues (scanner/kiosk/locale/<language>.po).
PAGE_LANGUAGES = ("en", "de", "fr", "nl", "es", "it")

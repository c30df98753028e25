"""Device drivers: cameras, serial and HID readers, GPIO outputs.

This package knows nothing of tickets and never imports ``scanner``.
"""
